"""Tests against the real timm and torchvision (run in .venv-interop: scripts/setup_interop)."""
