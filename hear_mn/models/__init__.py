"""The model families, one folder each. Importing this package registers every family (see
:func:`hear_mn.config.register_family`): adding a family is adding its folder and one line
below that imports the module calling ``register_family``."""

from hear_mn.models.audiomlp import family as audiomlp_family
from hear_mn.models.efficientat import dymn_family, mobilenet_family

__all__ = ["audiomlp_family", "dymn_family", "mobilenet_family"]
