"""Plugin registries: stevedore entry-point namespaces for pruners, resets and framework adapters."""
from importlib.metadata import entry_points
from typing import Dict, List

from .errors import LotteryConfigError

NAMESPACES = ("lth_plugins.pruners", "lth_plugins.resets", "lth_plugins.frameworks", "lth_plugins.commands",
              "lth_plugins.builds", "lth_plugins.sweep_targets")


def _entry_points(namespace: str):
    # Reading the metadata imports nothing: a framework adapter (and its framework) loads only when used.
    return {ep.name: ep for ep in entry_points(group=namespace)}


def available(namespace: str) -> List[str]:
    """Names registered under `namespace`."""
    return sorted(_entry_points(namespace))


def check_available(namespace: str, name: str) -> None:
    names = available(namespace)
    if name not in names:
        kind = namespace.rsplit(".", 1)[-1].rstrip("s")
        raise LotteryConfigError(f"unknown {kind} {name!r}; available: {', '.join(names) or '(none installed)'}")


def load(namespace: str, name: str):
    """The object an entry point names (a class or module), with a clear error for unknown names."""
    from stevedore import DriverManager

    check_available(namespace, name)
    return DriverManager(namespace, name, invoke_on_load=False, on_load_failure_callback=_raise).driver


def load_pruner(name: str):
    return load("lth_plugins.pruners", name)


def load_reset(name: str):
    return load("lth_plugins.resets", name)


def describe_all() -> Dict[str, Dict[str, str]]:
    """namespace -> {name: 'module:attr'} of everything registered: what `lth plugins` prints."""
    return {ns: {n: ep.value for n, ep in sorted(_entry_points(ns).items())} for ns in NAMESPACES}


def _raise(manager, entry_point, exc):
    raise exc
