"""The wheel cache, ``$LTH_CACHE`` or ``~/.cache/lth-plugins``: ``wheels/<name>/<key>/`` holds one wheel,
``build.json`` and the ``COMPLETE`` marker, published by one rename, so an entry without the marker (or a temp
folder of a killed build) is never trusted. The key covers the source's hash, the build code (the builder's files
and this package), Python, torch and the platform. Builds of one key take turns on a per-key lock."""
import hashlib
import json
import os
import shutil
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

from lth_plugins.atomic import atomic_write_json
from lth_plugins.lock import FileLock

MARKER = "COMPLETE"
PACKAGE = Path(__file__).resolve().parent


def cache_root() -> Path:
    return Path(os.environ.get("LTH_CACHE") or Path.home() / ".cache" / "lth-plugins").expanduser()


def builder_dir(name: str) -> Path:
    """The folder of one builder's entries, their logs and locks (created)."""
    folder = cache_root() / "wheels" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def build_code_hash(builder) -> str:
    """sha256 of the builder's files and of every module of this package (any of them may change the wheel)."""
    h = hashlib.sha256()
    for path in sorted({Path(p).resolve() for p in builder.build_files()} | set(PACKAGE.glob("*.py"))):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\n")
    return h.hexdigest()


def cache_key(builder, source_hash: str) -> str:
    parts = {"name": builder.name, "source": source_hash, "build_code": build_code_hash(builder),
             "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "torch": torch_version(),
             "platform": sysconfig.get_platform()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_wheel(entry: Path) -> Optional[Path]:
    """The wheel of a complete cache entry; None for a missing or half-written one."""
    if not (entry / MARKER).is_file():
        return None
    wheels = list(entry.glob("*.whl"))
    return wheels[0] if len(wheels) == 1 else None


def entry_lock(folder: Path, key: str, name: str) -> FileLock:
    """The lock one build of `key` holds from its cache check to its publish (taken with wait=True)."""
    return FileLock(folder / f".{key}.lock", f"the {name} wheel cache entry {key}")


def temp_dir(folder: Path, key: str) -> Path:
    """Where this process builds `key` before publishing it."""
    return folder / f".tmp-{key}-{os.getpid()}"


def remove_stale(folder: Path, key: str, log) -> None:
    """Under the key's lock: drop a half-written entry and the temp folders of builds that were killed (every
    other build of this key waits for the lock, so no temp folder of it belongs to a live build)."""
    entry = folder / key
    if entry.exists() and cached_wheel(entry) is None:
        log(f"cache entry {entry} is incomplete (an interrupted build); rebuilding")
        shutil.rmtree(entry)
    for tmp in folder.glob(f".tmp-{key}-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def publish(out: Path, entry: Path, record: dict) -> None:
    """Make the folder `out` (holding the wheel) the cache entry `entry`: build.json, the marker, one rename."""
    atomic_write_json(out / "build.json", record)
    (out / MARKER).write_text(entry.name + "\n")
    os.replace(out, entry)
