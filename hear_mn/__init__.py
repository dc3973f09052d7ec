"""hear-mn: low-complexity audio embedding extractors behind the HEAR API."""

__version__ = "0.1.0"
