"""lth-plugins adapter for FLARE (github idlrl/flare, commit 33b71b4): lottery-ticket rounds around FLARE's own
agents, Manager, SimpleAC and optimizer. Modules: a2c (command line and rounds), runner (one watched FLARE round),
env (gymnasium behind FLARE's Env), flare_compat (importing the installed flare-rl), build, sweep.
Importing this package imports neither FLARE nor gymnasium.
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
