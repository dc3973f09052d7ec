"""``python -m hear_mn``: the ``hear-mn`` command line (see :mod:`hear_mn.cli`)."""

from hear_mn.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
