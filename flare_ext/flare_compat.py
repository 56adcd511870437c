"""Importing FLARE as the installed ``flare-rl`` distribution (built by ``lth deps build flare --source ...``), with
one clear error saying why it is not importable and how to build it.
"""
import importlib
import multiprocessing
import os
import sys
from types import SimpleNamespace

FLARE_URL = "https://github.com/idlrl/flare"
FLARE_COMMIT = "33b71b4"
DIST = "flare-rl"


class FlareNotFoundError(ImportError):
    """FLARE cannot be imported; the message says why and how to build it."""


def _missing_message(detail: str, source: str = "/path/to/flare") -> str:
    return (
        f"FLARE is not importable: {detail}.\n"
        f"flare_ext runs on the real FLARE ({FLARE_URL}, tested at commit {FLARE_COMMIT}), installed as the "
        f"'{DIST}' distribution, which lth-plugins builds from a checkout or tarball of it:\n"
        f"    lth deps build flare --source {source}\n"
        f"e.g. after  git clone {FLARE_URL} /path/to/flare && git -C /path/to/flare checkout {FLARE_COMMIT}\n"
        "(scripts/setup.sh does this when FLARE_SRC=<checkout or tarball> is set)."
    )


def use_fork_start_method() -> None:
    """FLARE's agents are multiprocessing.Process subclasses that inherit the model, queues and closures from the
    parent, which only the fork start method gives (Python 3.14 makes forkserver Linux's default). Set for this
    process only, not baked into `import flare`: the start method is the whole program's choice."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("FLARE's agents need the 'fork' multiprocessing start method, which this platform "
                           "does not offer (FLARE runs on Linux)")
    if multiprocessing.get_start_method(allow_none=True) != "fork":
        multiprocessing.set_start_method("fork", force=True)


def _shadowing_folder(mod):
    """The folder a namespace-package `flare` came from (a folder without __init__.py), else None."""
    if getattr(mod, "__file__", None) is not None:
        return None
    paths = list(getattr(mod, "__path__", None) or [])
    return paths[0] if paths else None


_CACHE = None


def import_flare() -> SimpleNamespace:
    """Import FLARE and return the classes the adapter uses (Manager, SimpleRLAgent, SimpleAC,
    SimpleModelAC, OnlineHelper, Env).  Raises FlareNotFoundError saying why and how to build it."""
    global _CACHE
    if _CACHE is not None:
        return _CACHE
    root_hint = os.environ.get("FLARE_ROOT") or "/path/to/flare"
    if os.environ.get("FLARE_ROOT"):
        print(f"flare_ext: note: FLARE_ROOT is no longer read; FLARE is imported as the installed '{DIST}' "
              f"(build one from your checkout: lth deps build flare --source {os.environ['FLARE_ROOT']})",
              file=sys.stderr)
    use_fork_start_method()
    try:
        mod = importlib.import_module("flare")
    except ModuleNotFoundError as e:
        if e.name == "flare":
            raise FlareNotFoundError(_missing_message(f"no module named 'flare' ('{DIST}' is not installed "
                                                      f"in {sys.prefix})", source=root_hint)) from None
        raise
    folder = _shadowing_folder(mod)
    if folder:  # only when no flare-rl is installed: an installed regular package wins over a bare folder
        sys.modules.pop("flare", None)
        if os.path.isfile(os.path.join(folder, "flare", "__init__.py")):
            raise FlareNotFoundError(_missing_message(
                f"'{DIST}' is not installed in {sys.prefix}; 'import flare' found only the folder {folder}, a "
                "FLARE checkout whose top folder is not itself the package (a checkout is built, not imported)",
                source=folder))
        raise FlareNotFoundError(_missing_message(
            f"'{DIST}' is not installed in {sys.prefix}; 'import flare' found only the folder {folder}, which has "
            "no __init__.py and is not FLARE", source=root_hint))
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
        where = os.path.dirname(os.path.abspath(getattr(mod, "__file__", "") or "?"))
        raise FlareNotFoundError(_missing_message(
            f"the 'flare' at {where} does not look like FLARE {FLARE_COMMIT} built by lth-plugins: {e}")) from e
    _CACHE = ns
    return ns


def flare_available() -> bool:
    try:
        import_flare()
        return True
    except FlareNotFoundError:
        return False
