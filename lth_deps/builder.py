"""What a framework adapter implements to have its upstream tree built (`SourceBuild`), and where builders are
found: entry points of ``lth_plugins.builds`` (``name = my_pkg.build:MyBuild``), read by the core's registry."""
import sys
from pathlib import Path
from typing import Callable, List, Optional

from lth_plugins.registry import BUILDS, available, load

from .source import git_commit
from .steps import BuildError


class SourceBuild:
    """How to turn one framework's upstream tree into a wheel. Subclass, set the attributes, register the class
    under ``lth_plugins.builds``."""

    name: str = ""
    dist_name: str = ""
    expected_commit: str = ""
    apt_packages: List[str] = []    # Debian packages the build needs (lth_deps.system checks them)

    def identify(self, tree: Path) -> None:
        """Raise BuildError if `tree` is not this framework."""
        raise NotImplementedError

    def source_commit(self, tree: Path) -> Optional[str]:
        """The commit of a git checkout, else None."""
        return git_commit(tree)

    def build_files(self) -> List[Path]:
        """This builder's own code files (default: the modules of its classes); part of the cache key."""
        files = {getattr(sys.modules.get(c.__module__), "__file__", None) for c in type(self).__mro__
                 if c not in (SourceBuild, object)}
        return sorted(Path(f) for f in files if f)

    def build_wheel(self, tree: Path, wheel_dir: Path, log: Callable[[str], None]) -> Path:
        """Edit `tree` (a private, writable copy), build, write exactly one wheel into `wheel_dir`, return it."""
        raise NotImplementedError


def available_builders() -> List[str]:
    """Names of the registered builders (reads metadata only, imports no builder)."""
    return available(BUILDS)


def load_builder(name: str) -> SourceBuild:
    """An instance of the builder registered as `name`; BuildError naming the available ones if there is none."""
    return load(BUILDS, name, error=BuildError)()
