"""Plugin registries: entry-point namespaces for pruners, resets, commands, framework adapters, sweep targets,
builders and zero-preserving optimizers. The only place that finds and loads entry points."""
import importlib
import sys
from importlib.metadata import entry_points
from typing import Callable, Dict, List, Optional

from .errors import LotteryConfigError
from .plugin_table import BUILTINS

PRUNERS = "lth_plugins.pruners"
RESETS = "lth_plugins.resets"
COMMANDS = "lth_plugins.commands"
FRAMEWORKS = "lth_plugins.frameworks"
SWEEP_TARGETS = "lth_plugins.sweep_targets"
BUILDS = "lth_plugins.builds"
ZERO_PRESERVING = "lth_plugins.zero_preserving_optimizers"
NAMESPACES = (PRUNERS, RESETS, FRAMEWORKS, COMMANDS, BUILDS, SWEEP_TARGETS, ZERO_PRESERVING)


def targets(namespace: str) -> Dict[str, str]:
    """name -> "module:attr" of every plugin of `namespace`: the core's built-ins, then installed entry points
    (an installed one of the same name wins). Reading the metadata imports nothing."""
    found = dict(BUILTINS.get(namespace, {}))
    found.update({ep.name: ep.value for ep in entry_points(group=namespace)})
    return found


def available(namespace: str) -> List[str]:
    """Names registered under `namespace`."""
    return sorted(targets(namespace))


def check_available(namespace: str, name: str) -> None:
    names = available(namespace)
    if name not in names:
        kind = namespace.rsplit(".", 1)[-1].rstrip("s")
        raise LotteryConfigError(f"unknown {kind} {name!r}; available: {', '.join(names) or '(none installed)'}")


def _import(target: str):
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def load(namespace: str, name: str, error: Callable[[str], Exception] = LotteryConfigError):
    """The object a plugin names (a class or module); `error` builds the exception for an unknown name."""
    found = targets(namespace)
    if name not in found:
        kind = namespace.rsplit(".", 1)[-1].rstrip("s")
        raise error(f"unknown {kind} {name!r}; available: {', '.join(sorted(found)) or '(none installed)'}")
    return _import(found[name])


def load_all(namespace: str, warn: bool = True) -> Dict[str, object]:
    """name -> object of every plugin of `namespace`; one that fails to load is named on stderr and left out (an
    adapter whose framework is broken must not take the other plugins down with it)."""
    out = {}
    for name, target in sorted(targets(namespace).items()):
        try:
            out[name] = _import(target)
        except Exception as e:
            if warn:
                print(f"lth: warning: plugin {name!r} ({target}) of {namespace} could not be loaded: {e}",
                      file=sys.stderr)
    return out


def load_pruner(name: str):
    return load(PRUNERS, name)


def load_reset(name: str):
    return load(RESETS, name)


def names_class(target: str, cls: type) -> bool:
    """Whether "module:attr" names exactly `cls` (a subclass may behave otherwise), without importing anything."""
    module, _, attr = target.partition(":")
    return cls.__module__ == module.strip() and cls.__qualname__ == attr.strip()


def declared(namespace: str, cls: type) -> Optional[str]:
    """The name under which the class `cls` is declared in `namespace`, or None."""
    return next((n for n, t in targets(namespace).items() if names_class(t, cls)), None)


def describe_all() -> Dict[str, Dict[str, str]]:
    """namespace -> {name: 'module:attr'} of everything registered: what `lth plugins` prints."""
    return {ns: dict(sorted(targets(ns).items())) for ns in NAMESPACES}
