"""Published files (checkpoints, and any file a family downloads): found, downloaded, checked,
recorded, read safely. Generic: names no family; torch only in ``checkpoint`` and ``weights``.

Each module is one concern, and imports only those above it in this list (plus
:mod:`hear_mn.atomic`, through which every file is written), so data flows one way:

* :mod:`~hear_mn.hub.errors`: the errors of needed files (unavailable, bad, unreadable),
  each defined once under one name;
* :mod:`~hear_mn.hub.regular_files`: a needed file read once, whole, and only a regular file;
* :mod:`~hear_mn.hub.locations`: the lookup order, cache and mirror as paths and URLs,
  :class:`~hear_mn.hub.locations.RemoteFile`;
* :mod:`~hear_mn.hub.limits`: how much a download may receive and how slowly;
* :mod:`~hear_mn.hub.integrity`: trust levels and the ``<file>.sha256`` record;
* :mod:`~hear_mn.hub.published`: the SHA-256 a GitHub release publishes for an asset;
* :mod:`~hear_mn.hub.download`: an atomic, checked, bounded HTTP download; hashing;
* :mod:`~hear_mn.hub.fetch`: the checked copy of a published file: looked up, downloaded
  when missing, a bad cached copy evicted;
* :mod:`~hear_mn.hub.weights_spec`: :class:`~hear_mn.hub.weights_spec.WeightsSpec`, a
  released checkpoint as data (torch-free, for the families' tables);
* :mod:`~hear_mn.hub.checkpoint`: a checkpoint's bytes loaded safely (``weights_only``),
  a state dict fitted to a model;
* :mod:`~hear_mn.hub.weights`: :func:`~hear_mn.hub.weights.fetch_weights`, the one entry
  point for pretrained weights (fetch, then checkpoint).

Nothing is re-exported here: each name is imported from the module that defines it.
"""
