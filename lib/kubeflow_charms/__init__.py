"""Code every kubeflow-operators charm shares that is not a relation interface."""
