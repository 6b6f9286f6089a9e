"""horesnet's tests: a package, so that test modules import their shared helpers (``tests/_*.py``) by name."""
