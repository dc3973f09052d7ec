"""The package version: one source for the package, its outputs and setup.py."""

__version__ = "0.1.0"
