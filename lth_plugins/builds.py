"""Installable wheels of frameworks that are on no package registry, built from an upstream tree (issue 9).

A framework adapter subclasses :class:`SourceBuild` and registers it under the entry-point namespace
``lth_plugins.builds``; ``lth deps build NAME --source DIR_OR_TARBALL`` then

1. reads the source (a checkout, or a tarball such as a ``git archive``) and hashes its files (sorted paths,
   contents, executable bits; ``.git``, ``__pycache__`` and ``*.pyc`` ignored), reading a tarball in place;
2. keys the cache on (source hash, hash of the builder's code and of this module, Python, torch, platform);
3. on a miss, under a per-key lock, copies the tree to a private folder, lets the builder edit and build it,
   and publishes ``<cache>/wheels/<name>/<key>/`` (the wheel, ``build.json``, then the ``COMPLETE`` marker)
   by one atomic rename; a folder without the marker (or a temp folder of a killed build) is never trusted;
4. installs the wheel into the running interpreter's environment with pip (``PIP_CONSTRAINT`` honoured), then
   any of its declared requirements that are missing; pip is skipped when exactly this wheel is installed.

The cache folder is ``$LTH_CACHE`` or ``~/.cache/lth-plugins``; every build writes a log next to its entry.
"""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution, entry_points, version
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from .atomic import atomic_write_json
from .errors import LotteryError
from .lock import pid_alive

NAMESPACE = "lth_plugins.builds"
MARKER = "COMPLETE"
_IGNORED_DIRS = {".git", "__pycache__"}
_HEARTBEAT_S = 30.0


class BuildError(LotteryError):
    """A source, a system prerequisite or a build step failed; the message says what and what to do."""


class BuildLog:
    """``log(msg)``: a progress line on stderr and in the build's log file (``path``)."""

    def __init__(self, name: str, path: Optional[Path] = None, stream=None):
        self.name, self.path = name, path
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.monotonic()
        self._file = open(path, "a", buffering=1) if path is not None else None

    def __call__(self, msg: str) -> None:
        line = f"[lth deps {self.name}] {msg}"
        print(line, file=self.stream, flush=True)
        self.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    def write(self, text: str) -> None:
        """Append raw text (a command's output) to the log file only."""
        if self._file is not None:
            self._file.write(text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def run_step(cmd: Sequence[str], log: Callable[[str], None], cwd=None, env=None, what: Optional[str] = None) -> None:
    """Run one build command: its output goes to the log file, a progress line is printed at the start and every
    30 s, and a failure raises BuildError with the command's last output lines and the log's location."""
    what = what or " ".join(str(c) for c in cmd[:3])
    log(f"{what} ...")
    t0 = time.monotonic()
    tail: deque = deque(maxlen=40)
    write = getattr(log, "write", None)
    if write:
        write(f"$ {' '.join(str(c) for c in cmd)}\n")
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
    except FileNotFoundError as e:
        raise BuildError(f"{what}: command not found: {cmd[0]}") from e
    last = t0
    for line in proc.stdout:
        tail.append(line)
        if write:
            write(line)
        now = time.monotonic()
        if now - last >= _HEARTBEAT_S:
            log(f"{what}: still running ({int(now - t0)} s): {line.strip()[:100]}")
            last = now
    rc = proc.wait()
    if rc != 0:
        where = f"; full log: {log.path}" if getattr(log, "path", None) else ""
        raise BuildError(f"{what} failed (exit {rc}){where}. Last output:\n" + "".join(tail).rstrip())
    log(f"{what} done in {int(time.monotonic() - t0)} s")


class SourceBuild:
    """How to turn one framework's upstream tree into a wheel. Subclass, set the attributes, register under
    ``lth_plugins.builds`` (``name = my_pkg.build:MyBuild``)."""

    name: str = ""
    dist_name: str = ""
    expected_commit: str = ""
    apt_packages: List[str] = []

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

    def missing_system(self) -> List[str]:
        """The `apt_packages` not installed (dpkg's view; none can be told without dpkg)."""
        return missing_debian_packages(self.apt_packages)


# ---------------------------------------------------------------- sources

def git_commit(tree: Path) -> Optional[str]:
    if not (Path(tree) / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _ignored(parts: Sequence[str]) -> bool:
    return any(p in _IGNORED_DIRS for p in parts[:-1]) or parts[-1] in _IGNORED_DIRS or parts[-1].endswith(".pyc")


class Source:
    """A checkout folder or a tarball of one upstream tree, read without modifying it."""

    def __init__(self, path):
        self.path = Path(path).expanduser().resolve()
        if not self.path.exists():
            raise BuildError(f"source {str(path)!r} does not exist (give a checkout folder or a .tar/.tar.gz)")
        if self.path.is_dir():
            self.kind = "dir"
        elif tarfile.is_tarfile(self.path):
            self.kind = "tar"
        else:
            raise BuildError(f"source {str(path)!r} is neither a folder nor a tar archive")
        self._hash: Optional[str] = None

    # -- tar helpers
    def _tar_top(self, members) -> Optional[str]:
        """The single top folder of the archive (stripped, as ``git archive --prefix`` adds one), or None."""
        tops = {m.name.split("/", 1)[0] for m in members}
        if len(tops) == 1:
            top = tops.pop()
            if any(m.name == top and m.isdir() or m.name.startswith(top + "/") for m in members):
                return top
        return None

    def _entries(self) -> Iterator[Tuple[str, str, bytes]]:
        """(relative posix path, kind 'f'/'x'/'l', contents or link target) of every file, in any order."""
        if self.kind == "dir":
            for dirpath, dirnames, filenames in os.walk(self.path):
                dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
                for fn in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                    full = os.path.join(dirpath, fn)
                    rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                    if _ignored(rel.split("/")):
                        continue
                    if os.path.islink(full):
                        yield rel, "l", os.readlink(full).encode()
                    elif os.path.isfile(full):
                        with open(full, "rb") as f:
                            yield rel, "x" if os.access(full, os.X_OK) else "f", f.read()
            return
        try:
            with tarfile.open(self.path) as tf:
                members = tf.getmembers()
                top = self._tar_top(members)
                for m in members:
                    rel = m.name[len(top) + 1:] if top else m.name
                    if not rel or m.isdir() or _ignored(rel.split("/")):
                        continue
                    if m.issym() or m.islnk():
                        yield rel, "l", m.linkname.encode()
                    elif m.isfile():
                        yield rel, "x" if m.mode & 0o111 else "f", tf.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BuildError(f"cannot read the tar archive {self.path}: {e}") from e

    def content_hash(self) -> str:
        """sha256 over the sorted file list; the same tree gives the same hash as a folder or a tarball."""
        if self._hash is None:
            digests = sorted((rel, kind, hashlib.sha256(data).hexdigest()) for rel, kind, data in self._entries())
            if not digests:
                raise BuildError(f"source {self.path} holds no files")
            h = hashlib.sha256()
            for rel, kind, d in digests:
                h.update(f"{rel}\0{kind}\0{d}\n".encode())
            self._hash = h.hexdigest()
        return self._hash

    def commit(self, builder: SourceBuild) -> Optional[str]:
        """The git commit: the checkout's HEAD, or the commit ``git archive`` writes into a tarball's header."""
        if self.kind == "dir":
            return builder.source_commit(self.path)
        try:
            with tarfile.open(self.path) as tf:
                comment = tf.pax_headers.get("comment", "").strip()
        except (tarfile.TarError, OSError, EOFError):
            return None
        return comment if len(comment) == 40 and all(c in "0123456789abcdef" for c in comment) else None

    def materialize(self, dest: Path) -> Path:
        """A writable copy of the tree at `dest` (same ignore rules as the hash); returns its root."""
        if self.kind == "dir":
            shutil.copytree(self.path, dest, symlinks=True,
                            ignore=lambda d, names: [n for n in names if n in _IGNORED_DIRS or n.endswith(".pyc")])
            return dest
        dest.mkdir(parents=True)
        with tarfile.open(self.path) as tf:
            members = tf.getmembers()
            top = self._tar_top(members)
            tf.extractall(dest, filter="data")
        return dest / top if top else dest


# ---------------------------------------------------------------- system packages

def missing_debian_packages(packages: Sequence[str]) -> List[str]:
    if not packages or not shutil.which("dpkg-query"):
        return []
    missing = []
    for pkg in packages:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
        if out.returncode != 0 or "install ok installed" not in out.stdout:
            missing.append(pkg)
    return missing


def ensure_system_packages(builder: SourceBuild, log: Callable[[str], None]) -> None:
    """Install the builder's missing apt packages when root with apt-get, else raise BuildError naming them."""
    missing = builder.missing_system()
    if not missing:
        return
    cmd = "apt-get install -y --no-install-recommends " + " ".join(missing)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BuildError(f"building {builder.dist_name} needs system packages that are not installed: "
                         f"{', '.join(missing)}. Install them with:\n    sudo {cmd}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log(f"installing system packages: {' '.join(missing)}")
    for step in (["apt-get", "update", "-q"], cmd.split()):
        out = subprocess.run(step, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise BuildError(f"`{' '.join(step)}` failed (exit {out.returncode}); install {' '.join(missing)} "
                             f"yourself:\n{out.stderr.strip()[-2000:]}")


# ---------------------------------------------------------------- cache and build

def cache_root() -> Path:
    return Path(os.environ.get("LTH_CACHE") or Path.home() / ".cache" / "lth-plugins").expanduser()


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def build_code_hash(builder: SourceBuild) -> str:
    h = hashlib.sha256()
    for path in sorted({Path(p).resolve() for p in builder.build_files()} | {Path(__file__).resolve()}):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\n")
    return h.hexdigest()


def cache_key(builder: SourceBuild, source_hash: str) -> str:
    parts = {"name": builder.name, "source": source_hash, "build_code": build_code_hash(builder),
             "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "torch": _torch_version(),
             "platform": sysconfig.get_platform()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class BuildResult:
    wheel: Path
    key: str
    cached: bool          # the wheel came from the cache
    installed: bool       # pip installed it now (False: --no-install, or this wheel was already installed)
    commit: Optional[str]


def cached_wheel(entry: Path) -> Optional[Path]:
    """The wheel of a complete cache entry; None for a missing or half-written one."""
    if not (entry / MARKER).is_file():
        return None
    wheels = list(entry.glob("*.whl"))
    return wheels[0] if len(wheels) == 1 else None


def _remove_stale(name_dir: Path, key: str, log) -> None:
    """Under the key's lock: drop a half-written entry and the temp folders of builds that were killed."""
    entry = name_dir / key
    if entry.exists() and cached_wheel(entry) is None:
        log(f"cache entry {entry} is incomplete (an interrupted build); rebuilding")
        shutil.rmtree(entry)
    for tmp in name_dir.glob(f".tmp-{key}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not pid_alive(int(pid)) or int(pid) == os.getpid():
            shutil.rmtree(tmp, ignore_errors=True)


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


def build(builder: SourceBuild, source, install: bool = True, rebuild: bool = False, stream=None) -> BuildResult:
    """Build (or take from the cache) the wheel of `builder` from `source`, then install it unless told not to."""
    src = Source(source)
    quiet = BuildLog(builder.name, stream=stream)
    if src.kind == "dir":
        builder.identify(src.path)
    commit = src.commit(builder)
    _check_commit(builder, commit, quiet)
    quiet(f"hashing {src.path}")
    key = cache_key(builder, src.content_hash())
    name_dir = cache_root() / "wheels" / builder.name
    name_dir.mkdir(parents=True, exist_ok=True)
    entry = name_dir / key
    wheel = None if rebuild else cached_wheel(entry)
    cached = wheel is not None
    if cached:
        quiet(f"cached wheel {wheel.name} (key {key})")
    else:
        wheel = _build_locked(builder, src, commit, name_dir, key, rebuild, stream)
    installed = False
    if install:
        installed = install_wheel(builder, wheel, quiet)
    return BuildResult(wheel=wheel, key=key, cached=cached, installed=installed, commit=commit)


def _build_locked(builder, src: Source, commit, name_dir: Path, key: str, rebuild: bool, stream) -> Path:
    entry = name_dir / key
    with open(name_dir / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        quiet = BuildLog(builder.name, stream=stream)
        if rebuild and entry.exists():
            shutil.rmtree(entry)
        _remove_stale(name_dir, key, quiet)
        wheel = cached_wheel(entry)
        if wheel is not None:  # another process built it while we waited for the lock
            quiet(f"cached wheel {wheel.name} (key {key})")
            return wheel
        log = BuildLog(builder.name, path=name_dir / f"{key}.log", stream=stream)
        tmp = name_dir / f".tmp-{key}-{os.getpid()}"
        try:
            log(f"building {builder.dist_name} from {src.path} (key {key}); log: {log.path}")
            ensure_system_packages(builder, log)
            tree = src.materialize(tmp / "src")
            if src.kind == "tar":
                builder.identify(tree)
            out = tmp / "entry"
            out.mkdir()
            made = _validate_wheel(builder, builder.build_wheel(tree, out, log), out)
            atomic_write_json(out / "build.json", {
                "dist": builder.dist_name, "wheel": made.name, "key": key, "source": str(src.path),
                "source_hash": src.content_hash(), "commit": commit, "build_code_hash": build_code_hash(builder),
                "python": sys.version.split()[0], "torch": _torch_version(),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.monotonic() - log.t0, 1)})
            (out / MARKER).write_text(key + "\n")
            os.replace(out, entry)
            log(f"built {made.name} in {int(time.monotonic() - log.t0)} s -> {entry}")
            return entry / made.name
        except BuildError:
            raise
        except Exception as e:
            raise BuildError(f"building {builder.dist_name} failed: {type(e).__name__}: {e}; log: {log.path}") from e
        finally:
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)


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


def install_wheel(builder: SourceBuild, wheel: Path, log) -> bool:
    """pip-install `wheel` into this interpreter's environment; False when exactly this wheel is installed."""
    if installed_from(builder.dist_name) == Path(wheel).resolve().as_uri():
        log(f"{builder.dist_name} is installed from this wheel already")
        return False
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    run_step(pip + ["--no-deps", "--force-reinstall", str(wheel)], log, what=f"pip install {Path(wheel).name}")
    # then its declared dependencies that are missing (PIP_CONSTRAINT keeps torch pinned; present ones stay)
    run_step(pip + [str(wheel)], log, what=f"pip install the requirements of {builder.dist_name}")
    return True


# ---------------------------------------------------------------- registry

def available_builders() -> List[str]:
    return sorted({ep.name for ep in entry_points(group=NAMESPACE)})


def load_builder(name: str) -> SourceBuild:
    eps = {ep.name: ep for ep in entry_points(group=NAMESPACE)}
    if name not in eps:
        raise BuildError(f"no builder named {name!r}; available: {', '.join(sorted(eps)) or '(none installed)'}")
    return eps[name].load()()
