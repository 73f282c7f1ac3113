"""``vggt-mv`` and ``vggt-mv-view``: the command line, one file per command (:mod:`app.cli.main` is the group).

The top layer of the app: it parses options and calls the packages below (``viewer``, ``export``, ``reconstruct``,
``capture``); no other module imports it. ``python -m app.cli`` (and ``torchrun -m app.cli``) runs the group.
"""

from app.cli.main import main, view_main

__all__ = ["main", "view_main"]
