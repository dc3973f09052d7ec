"""The model families. Importing this package registers each of them (see
:func:`hear_mn.config.register_family`); a new family is a module here, listed below."""

from hear_mn.families import audiomlp, dymn, efficientat

__all__ = ["audiomlp", "dymn", "efficientat"]
