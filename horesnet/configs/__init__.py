"""Hydra configs shipped inside the package (so they work from an installed wheel)."""
