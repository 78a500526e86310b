"""Typed relation libraries for the kubeflow-operators charms.

One module per interface. Each module holds the pydantic models of both
sides' databags, a Provider and a Requirer class that read and write them,
and helpers that build ready `ops.testing` relations for charm tests.
Libraries never set status: they expose data, and raise or return.
"""
