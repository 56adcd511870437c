"""Finding and importing the real, unmodified FLARE (github idlrl/flare) on Python 3.10+.

FLARE is on no package registry: users run it from a git checkout.  This module finds the checkout
(``$FLARE_ROOT`` or anything already importable as ``flare``), applies the two interpreter-level
shims FLARE needs on a modern Python, and imports the FLARE classes the adapter uses:

* ``flare/framework/common_functions.py`` does ``from collections import Iterable``, removed in
  Python 3.10: ``collections.Iterable`` is aliased to ``collections.abc.Iterable`` before FLARE is
  imported (nothing in FLARE is edited).
* FLARE's agents are ``multiprocessing.Process`` subclasses that inherit the model, queues and
  closures from the parent, which only works with the ``fork`` start method; it is set explicitly
  (Python 3.14 changes the Linux default to ``forkserver``).

FLARE's old gym API is bridged separately, by :class:`flare_ext.env.GymnasiumEnv`.
"""
import collections
import collections.abc
import importlib
import multiprocessing
import os
import sys
from types import SimpleNamespace

FLARE_URL = "https://github.com/idlrl/flare"
FLARE_COMMIT = "33b71b4"


class FlareNotFoundError(ImportError):
    """FLARE cannot be imported; the message tells how to point at a checkout."""


def _missing_message(detail: str) -> str:
    return (
        f"FLARE is not importable ({detail}).\n"
        f"flare_ext runs on a checkout of the real FLARE ({FLARE_URL}, tested at commit {FLARE_COMMIT}); "
        "FLARE is on no package registry. Point at it with either\n"
        "    export FLARE_ROOT=/path/to/flare      # the directory that contains flare/__init__.py\n"
        "or  export PYTHONPATH=/path/to/flare:$PYTHONPATH\n"
        f"e.g.  git clone {FLARE_URL} /path/to/flare && git -C /path/to/flare checkout {FLARE_COMMIT}"
    )


def apply_python_shims() -> None:
    """Interpreter-level shims FLARE needs on Python >= 3.10; idempotent, touches no FLARE file."""
    for name in ("Iterable", "Iterator", "Mapping", "MutableMapping", "Sequence", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def use_fork_start_method() -> None:
    """FLARE's agents must be forked; raise a clear error where fork is unavailable."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("FLARE's agents need the 'fork' multiprocessing start method, which this platform "
                           "does not offer (FLARE runs on Linux)")
    if multiprocessing.get_start_method(allow_none=True) != "fork":
        multiprocessing.set_start_method("fork", force=True)


def flare_root_from_env():
    root = os.environ.get("FLARE_ROOT")
    if not root:
        return None
    root = os.path.abspath(os.path.expanduser(root))
    if os.path.isfile(os.path.join(root, "flare", "__init__.py")):
        return root
    if os.path.isfile(os.path.join(root, "__init__.py")) and os.path.basename(root) == "flare":
        return os.path.dirname(root)  # FLARE_ROOT pointed at the package itself
    raise FlareNotFoundError(_missing_message(f"FLARE_ROOT={os.environ['FLARE_ROOT']!r} holds no flare/__init__.py"))


_CACHE = None


def import_flare() -> SimpleNamespace:
    """Import FLARE and return the classes the adapter uses (Manager, SimpleRLAgent, SimpleAC,
    SimpleModelAC, OnlineHelper, Env).  Raises FlareNotFoundError with set-up instructions."""
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    root = flare_root_from_env()
    if root and root not in sys.path:
        sys.path.insert(0, root)
    apply_python_shims()
    use_fork_start_method()
    try:
        importlib.import_module("flare")
    except ModuleNotFoundError as e:
        if e.name == "flare":
            raise FlareNotFoundError(_missing_message("no module named 'flare'")) from None
        raise
    try:
        ns = SimpleNamespace(
            Manager=importlib.import_module("flare.framework.manager").Manager,
            Agent=importlib.import_module("flare.framework.agent").Agent,
            OnlineHelper=importlib.import_module("flare.framework.agent").OnlineHelper,
            Env=importlib.import_module("flare.framework.env").Env,
            SimpleAC=importlib.import_module("flare.algorithm_zoo.simple_algorithms").SimpleAC,
            SimpleModelAC=importlib.import_module("flare.model_zoo.simple_models").SimpleModelAC,
            SimpleRLAgent=importlib.import_module("flare.agent_zoo.simple_rl_agents").SimpleRLAgent,
        )
    except (ImportError, AttributeError) as e:
        flare_mod = sys.modules.get("flare")
        where = os.path.dirname(os.path.dirname(getattr(flare_mod, "__file__", "") or "?"))
        raise FlareNotFoundError(_missing_message(
            f"the 'flare' found at {where} does not look like FLARE {FLARE_COMMIT}: {e}")) from e
    ns.root = os.path.dirname(os.path.dirname(os.path.abspath(sys.modules["flare"].__file__)))
    _CACHE = ns
    return ns


def flare_available() -> bool:
    try:
        import_flare()
        return True
    except FlareNotFoundError:
        return False
