"""The run store: one directory per experiment, every write atomic, every phase skippable when done.

    RUN_DIR/config.json          the configuration (its hash names the directory when the store derives it)
    RUN_DIR/snapshots/init.pt    weights before the first update
    RUN_DIR/snapshots/late.pt    weights at the late-reset point
    RUN_DIR/snapshots/late.json  where the late snapshot was taken (update, epoch, the trainer's state): the
                                 start point of the rounds that reset to it
    RUN_DIR/round_KK/mask.lthm   the round's mask, bit-packed
    RUN_DIR/round_KK/sparsity.json  per-parameter density
    RUN_DIR/round_KK/started.json   written when the round starts training: its start point and end
    RUN_DIR/round_KK/metrics.json   the round's metrics; its presence marks the round finished
"""
import fcntl
import hashlib
import json
import os
import weakref
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .atomic import atomic_torch_save, atomic_write_json, read_json
from .errors import RunStoreError
from .masks import Mask

CONFIG = "config.json"
# Keys that may change between invocations of one experiment: raising `rounds` extends a run.
# How long a random ticket waits for its winning ticket's masks changes nothing it computes.
MUTABLE_KEYS = ("lottery.rounds", "lottery.mask_wait")
# What a configuration stored before a key existed meant: runs made before budgets retrained the full budget.
LEGACY_VALUES = {"lottery.budget": "full"}
# Files that do not make a directory hold results: one holding only these may take another configuration.
_NOT_RESULTS = (CONFIG, ".lock")

# Lock descriptors of this process's writers: a forked child (a framework's worker) closes its copies, so that
# no child outlives its parent holding the run's lock.
_LOCK_FDS: "weakref.WeakSet[RunStore]" = weakref.WeakSet()


def _close_inherited_locks():
    for store in list(_LOCK_FDS):
        if store._lock_fd is not None:
            try:
                os.close(store._lock_fd)  # this copy only; the parent's lock stays
            except OSError:
                pass
            store._lock_fd = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def config_hash(config: dict) -> str:
    identity = {k: v for k, v in _flatten(config).items() if k not in MUTABLE_KEYS}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]


def derive_run_dir(parent, config: dict, prefix: str = "lottery") -> Path:
    """open_lth style: the directory name is derived from the configuration, so equal configs share it."""
    return Path(parent) / f"{prefix}_{config_hash(config)}"


class RunStore:
    """Read/write access to one run directory. A writer holds an exclusive lock for its lifetime."""

    def __init__(self, path, config: Optional[dict] = None, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self._lock_fd = None
        if config is None:  # read-only view of an existing run (status, report, masks of a winning ticket)
            if not (self.path / CONFIG).is_file():
                raise RunStoreError(f"{self.path} is not a lottery run directory (no {CONFIG})")
            self.config = read_json(self.path / CONFIG)
            self.writer = False
            return
        config = json.loads(json.dumps(config, default=str))
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
        existing = self.path / CONFIG
        if existing.is_file():
            stored = read_json(existing)
            diff = config_diff(stored, config)
            if diff and writer and not self.holds_results():
                diff = []  # a start that failed before any result may be corrected freely
                stored = None
            if diff:
                self.close()
                raise RunStoreError(
                    f"run directory {self.path} holds a different configuration; refusing to reuse it. "
                    f"Differing keys: " + "; ".join(f"{k}: stored {a!r} vs now {b!r}" for k, a, b in diff)
                    + ". Use another run directory.")
            if writer and stored != config:  # only mutable keys differ
                atomic_write_json(existing, config)
        elif writer:
            atomic_write_json(existing, config)
        self.config = config

    def holds_results(self) -> bool:
        """True when the directory holds anything but its configuration (a snapshot, mask, checkpoint...)."""
        return holds_results(self.path)

    # --- locking -----------------------------------------------------------------------------------
    def _lock(self):
        """Exclusive flock on RUN_DIR/.lock, which records the holder's pid. A lock whose recorded holder is
        dead (held by orphans of a killed process through an inherited descriptor) is replaced by a fresh
        lock file: the orphans keep a lock on the unlinked file, which blocks nobody."""
        path = self.path / ".lock"
        for _ in range(5):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip()
                if holder.isdigit() and not pid_alive(int(holder)):
                    if _is_current(fd, path):  # not already replaced by another starter
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            pass
                    os.close(fd)
                    continue
                os.close(fd)
                raise RunStoreError(f"run directory {self.path} is in use by another process (pid "
                                    f"{holder or '?'}); wait for it to finish or stop it first") from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            # Another starter may have replaced the file since our open, or, until our pid was written, read the
            # dead holder's pid and replaced it: then the lock we hold is on an unlinked file and blocks nobody.
            if not _is_current(fd, path):
                os.close(fd)
                continue
            self._lock_fd = fd
            _LOCK_FDS.add(self)
            return
        raise RunStoreError(f"could not lock run directory {self.path}: its lock file keeps changing")

    def close(self):
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        _LOCK_FDS.discard(self)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_writer(self):
        if not self.writer:
            raise RunStoreError(f"this process may not write to {self.path} (read-only or non-zero rank)")

    # --- paths ----------------------------------------------------------------------------------------
    def round_dir(self, k: int) -> Path:
        return self.path / f"round_{k:02d}"

    def mask_path(self, k: int) -> Path:
        return self.round_dir(k) / "mask.lthm"

    def metrics_path(self, k: int) -> Path:
        return self.round_dir(k) / "metrics.json"

    def snapshot_path(self, kind: str) -> Path:
        return self.path / "snapshots" / f"{kind}.pt"

    # --- masks and snapshots --------------------------------------------------------------------------
    def has_mask(self, k: int) -> bool:
        return self.mask_path(k).is_file()

    def save_mask(self, k: int, mask: Mask) -> None:
        self._check_writer()
        mask.save(self.mask_path(k))

    def load_mask(self, k: int) -> Mask:
        return Mask.load(self.mask_path(k))

    def has_snapshot(self, kind: str) -> bool:
        return self.snapshot_path(kind).is_file()

    def save_snapshot(self, kind: str, state: Dict[str, torch.Tensor], meta: Optional[dict] = None) -> None:
        """`meta` (JSON) is written first: the weights file marks the snapshot as taken."""
        self._check_writer()
        if meta is not None:
            atomic_write_json(self.snapshot_path(kind).with_suffix(".json"), meta)
        atomic_torch_save(self.snapshot_path(kind), state)

    def discard_snapshot(self, kind: str) -> None:
        """Remove a snapshot: the weights file first (it marks the snapshot as taken), then its meta."""
        self._check_writer()
        for path in (self.snapshot_path(kind), self.snapshot_path(kind).with_suffix(".json")):
            path.unlink(missing_ok=True)

    def read_snapshot_meta(self, kind: str) -> Optional[dict]:
        path = self.snapshot_path(kind).with_suffix(".json")
        return read_json(path) if path.is_file() and self.has_snapshot(kind) else None

    def load_snapshot(self, kind: str) -> Dict[str, torch.Tensor]:
        path = self.snapshot_path(kind)
        if not path.is_file():
            raise RunStoreError(f"snapshot {path} is missing")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RunStoreError(f"snapshot {path} is unreadable ({e})") from None

    # --- rounds ---------------------------------------------------------------------------------------
    def round_done(self, k: int) -> bool:
        return self.metrics_path(k).is_file()

    def write_started(self, k: int, info: dict) -> None:
        self._check_writer()
        atomic_write_json(self.round_dir(k) / "started.json", info)

    def read_started(self, k: int) -> Optional[dict]:
        path = self.round_dir(k) / "started.json"
        return read_json(path) if path.is_file() else None

    def write_round(self, k: int, metrics: dict, sparsity: dict) -> None:
        """Sparsity report first, metrics last: metrics.json is the round's completion marker."""
        self._check_writer()
        atomic_write_json(self.round_dir(k) / "sparsity.json", sparsity)
        atomic_write_json(self.metrics_path(k), metrics)

    def read_metrics(self, k: int) -> dict:
        return read_json(self.metrics_path(k))

    def read_sparsity(self, k: int) -> dict:
        return read_json(self.round_dir(k) / "sparsity.json")

    def rounds_on_disk(self) -> List[int]:
        return sorted(int(p.name.split("_")[1]) for p in self.path.glob("round_[0-9]*") if p.is_dir())


def _is_current(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not unlinked or replaced)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def holds_results(path) -> bool:
    """True when the run directory `path` holds anything but its configuration (a snapshot, mask, checkpoint...)."""
    return any(p.is_file() and p.name not in _NOT_RESULTS and not p.name.endswith(".tmp")
               for p in Path(path).rglob("*"))


def pid_alive(pid) -> bool:
    """Whether a process with this pid runs (another user's counts; a zombie, dead but not yet reaped, does
    not); False for anything not a pid."""
    try:
        os.kill(int(pid), 0)
    except PermissionError:
        return True
    except (OSError, TypeError, ValueError):
        return False
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal test above is all there is


def lock_holder(path) -> Optional[int]:
    """The pid of the live process holding the run directory's lock, or None (not running, or killed)."""
    lock = Path(path) / ".lock"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            return int(holder) if holder.isdigit() and pid_alive(int(holder)) else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def config_diff(a: dict, b: dict):
    """[(key, value in a, value in b)] over flattened keys that differ, ignoring MUTABLE_KEYS."""
    fa, fb = _flatten(a), _flatten(b)
    for flat in (fa, fb):
        if "lottery.ticket" in flat:
            for k, v in LEGACY_VALUES.items():
                flat.setdefault(k, v)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in MUTABLE_KEYS and fa.get(k) != fb.get(k)]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
