"""Installing a built wheel into the running interpreter's environment with pip (``PIP_CONSTRAINT`` honoured):
the wheel itself, then its declared requirements that are missing; nothing when exactly this wheel is installed."""
import json
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Optional

from .steps import run_step


def installed_from(dist_name: str) -> Optional[str]:
    """The file URL the installed `dist_name` was installed from (pip's direct_url.json), if any."""
    try:
        text = distribution(dist_name).read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    try:
        return json.loads(text).get("url") if text else None
    except ValueError:
        return None


def install_wheel(dist_name: str, wheel: Path, log) -> bool:
    """pip-install `wheel` (of `dist_name`) here; False when exactly this wheel is installed already."""
    if installed_from(dist_name) == Path(wheel).resolve().as_uri():
        log(f"{dist_name} is installed from this wheel already")
        return False
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    run_step(pip + ["--no-deps", "--force-reinstall", str(wheel)], log, what=f"pip install {Path(wheel).name}")
    # then its declared dependencies that are missing (PIP_CONSTRAINT keeps torch pinned; present ones stay)
    run_step(pip + [str(wheel)], log, what=f"pip install the requirements of {dist_name}")
    return True
