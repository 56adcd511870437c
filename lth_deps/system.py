"""The Debian packages a build needs (a builder's `apt_packages`), checked with dpkg-query; never installed from
Python. `scripts/setup.sh` installs them as root from the line this module prints:

    python -m lth_deps.system NAME...   # the apt-get install line of the packages NAME's builds miss, or nothing
"""
import shutil
import subprocess
import sys
from typing import List, Sequence

from .builder import SourceBuild, load_builder
from .steps import BuildError

APT_INSTALL = "apt-get install -y --no-install-recommends"


def missing_debian_packages(packages: Sequence[str]) -> List[str]:
    """The `packages` dpkg does not list as installed (none can be told without dpkg)."""
    if not packages or not shutil.which("dpkg-query"):
        return []
    missing = []
    for pkg in packages:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if out.returncode != 0 or "install ok installed" not in out.stdout:
            missing.append(pkg)
    return missing


def install_line(packages: Sequence[str]) -> str:
    """The command that installs `packages` (run as root)."""
    return f"{APT_INSTALL} {' '.join(packages)}"


def check_system_packages(builder: SourceBuild) -> None:
    """Raise BuildError naming the apt-get line if a package the builder needs is not installed."""
    missing = missing_debian_packages(builder.apt_packages)
    if missing:
        raise BuildError(f"building {builder.dist_name} needs system packages that are not installed: "
                         f"{', '.join(missing)}. Install them with:\n    sudo {install_line(missing)}")


def main(argv: Sequence[str]) -> int:
    try:
        builders = [load_builder(name) for name in argv]
    except BuildError as e:
        print(f"lth_deps.system: error: {e}", file=sys.stderr)
        return 2
    missing = missing_debian_packages([p for b in builders for p in b.apt_packages])
    if missing:
        print(install_line(dict.fromkeys(missing)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
