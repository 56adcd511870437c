"""lth-plugins adapter for FLARE (github idlrl/flare, commit 33b71b4): lottery-ticket rounds around FLARE's
own agents, Manager, ``SimpleAC`` and optimizer, on Python 3.10+, torch 2.x and gymnasium 1.x.

FLARE is on no package registry: ``lth deps build flare --source CHECKOUT_OR_TARBALL`` builds and installs it as
``flare-rl`` (``build``), then run ``python -m flare_ext.a2c --game CartPole-v0 --lottery-prune``.

Modules: ``build`` (the flare-rl wheel from an upstream tree), ``flare_compat`` (importing the installed FLARE,
the fork start method), ``env`` (the gymnasium bridge behind FLARE's Env interface), ``runner`` (one watched FLARE
round: per-game reports, epoch and update callbacks on FLARE's optimizer, agent-crash detection) and
``a2c`` (the command line).  Importing this package imports neither FLARE nor gymnasium.
"""
FRAMEWORK = "flare"


def main(argv=None) -> int:
    """The ``python -m flare_ext.a2c`` command line."""
    from .a2c import main as _main

    return _main(argv)


def import_flare():
    """FLARE's classes (Manager, SimpleRLAgent, SimpleAC, SimpleModelAC, OnlineHelper, Env)."""
    from .flare_compat import import_flare as _import

    return _import()
