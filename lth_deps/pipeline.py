"""`build`: the wheel of one builder from one source, from the cache or built under the key's lock in a private
copy (system packages checked, the builder's edits and build, the wheel validated and published), then installed."""
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from . import cache
from .builder import SourceBuild
from .install import install_wheel
from .source import Source
from .steps import BuildError, BuildLog


@dataclass
class BuildResult:
    wheel: Path
    key: str
    cached: bool          # the wheel came from the cache
    installed: bool       # pip installed it now (False: --no-install, or this wheel was already installed)
    commit: Optional[str]


def build(builder: SourceBuild, source, install: bool = True, rebuild: bool = False, stream=None) -> BuildResult:
    """Build (or take from the cache) the wheel of `builder` from `source`, then install it unless told not to."""
    src = Source(source)
    quiet = BuildLog(builder.name, stream=stream)
    if src.kind == "dir":
        builder.identify(src.path)
    commit = src.commit(builder)
    _check_commit(builder, commit, quiet)
    quiet(f"hashing {src.path}")
    key = cache.cache_key(builder, src.content_hash())
    folder = cache.builder_dir(builder.name)
    wheel = None if rebuild else cache.cached_wheel(folder / key)
    cached = wheel is not None
    if cached:
        quiet(f"cached wheel {wheel.name} (key {key})")
    else:
        wheel = _build_locked(builder, src, commit, folder, key, rebuild, stream)
    installed = install_wheel(builder.dist_name, wheel, quiet) if install else False
    return BuildResult(wheel=wheel, key=key, cached=cached, installed=installed, commit=commit)


def _check_commit(builder: SourceBuild, commit: Optional[str], log) -> None:
    exp = builder.expected_commit
    if not exp:
        return
    if commit is None:
        log(f"note: the source's commit is unknown (no .git, no git archive header); tested at {exp}")
    elif not (commit.startswith(exp) or exp.startswith(commit)):
        log(f"warning: the source is at commit {commit[:12]}, not {exp} (the commit lth-plugins is tested "
            "with); building it anyway")


def _validate_wheel(builder: SourceBuild, wheel, wheel_dir: Path) -> Path:
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"the {builder.name} builder wrote {len(wheels)} wheels into {wheel_dir}, expected one")
    if wheel is None or Path(wheel).resolve() != wheels[0].resolve():
        raise BuildError(f"the {builder.name} builder returned {wheel}, but wrote {wheels[0]}")
    dist = wheels[0].name.split("-", 1)[0]
    if dist.replace("_", "-").lower() != builder.dist_name.lower():
        raise BuildError(f"the {builder.name} builder made {wheels[0].name}, not a {builder.dist_name} wheel")
    return wheels[0]


def _build_locked(builder: SourceBuild, src: Source, commit, folder: Path, key: str, rebuild: bool,
                  stream) -> Path:
    entry = folder / key
    with cache.entry_lock(folder, key, builder.name).acquire(wait=True):
        quiet = BuildLog(builder.name, stream=stream)
        if rebuild and entry.exists():
            shutil.rmtree(entry)
        cache.remove_stale(folder, key, quiet)
        wheel = cache.cached_wheel(entry)
        if wheel is not None:  # another process built it while we waited for the lock
            quiet(f"cached wheel {wheel.name} (key {key})")
            return wheel
        log = BuildLog(builder.name, path=folder / f"{key}.log", stream=stream)
        tmp = cache.temp_dir(folder, key)
        try:
            log(f"building {builder.dist_name} from {src.path} (key {key}); log: {log.path}")
            # imported here: `python -m lth_deps.system` (setup.sh) must find the module not yet imported
            from .system import check_system_packages

            check_system_packages(builder)
            tree = src.materialize(tmp / "src")
            if src.kind == "tar":
                builder.identify(tree)
            out = tmp / "entry"
            out.mkdir()
            made = _validate_wheel(builder, builder.build_wheel(tree, out, log), out)
            cache.publish(out, entry, {
                "dist": builder.dist_name, "wheel": made.name, "key": key, "source": str(src.path),
                "source_hash": src.content_hash(), "commit": commit, "build_code_hash": cache.build_code_hash(builder),
                "python": sys.version.split()[0], "torch": cache.torch_version(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.monotonic() - log.t0, 1)})
            log(f"built {made.name} in {int(time.monotonic() - log.t0)} s -> {entry}")
            return entry / made.name
        except BuildError:
            raise
        except Exception as e:
            raise BuildError(f"building {builder.dist_name} failed: {type(e).__name__}: {e}; log: {log.path}") from e
        finally:
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)
