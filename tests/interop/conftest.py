"""Interop tests: the ecosystem's own libraries on the other side of our real charms.

Each test runs one of our charms under `ops.testing` with a relation whose
other side is written or read by the ecosystem library that Canonical's
charms use for that interface (or, where no such library is published as a
package, by the interface's published wire format, cited in the test), and
checks that both sides reach their ready state.
"""
