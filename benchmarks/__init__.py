"""Benchmarks of horesnet: run as modules from the repository root (docs/benchmarks_method.md)."""
