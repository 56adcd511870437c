"""The run store: the one place that knows a run directory's layout; every write atomic, every phase skippable.

    RUN_DIR/config.json          the configuration (read back with the meaning it had when written)
    RUN_DIR/snapshots/KIND.pt    weights of a Snapshot kind (init, late, dense_trained); KIND.json beside one:
                                 where it was taken
    RUN_DIR/round_KK/mask.lthm   the round's mask, bit-packed
    RUN_DIR/round_KK/sparsity.json  per-parameter density
    RUN_DIR/round_KK/started.json   written when the round starts training: its start point and end
    RUN_DIR/round_KK/metrics.json   the round's metrics; its presence marks the round finished
    RUN_DIR/FRAMEWORK/round_KK/  a framework's own files of the round (checkpoints)
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from .atomic import atomic_torch_save, atomic_write_json, read_json
from .errors import LotteryError, RunStoreError
from .hparams import Choice, LotteryConfig
from .lock import FileLock, Holder, live_holder, read_holder
from .scheduler import job_active
from .masks import Mask
from .record import RoundRecord

class Snapshot(Choice):
    """The weights a run keeps besides its masks (RUN_DIR/snapshots/KIND.pt)."""
    INIT = "init"                    # before the first update: reset to init, a random ticket's re-draws
    LATE = "late"                    # at the late-reset point of the dense round
    DENSE_TRAINED = "dense_trained"  # after the dense round: one-shot masks, runs reusing the dense round


CONFIG = "config.json"
LOCK = ".lock"
# A framework's data as its settings hold it: its content, file by file (DATA_KEY.FILE: fairseq's dictionaries and
# binarized files) or, in runs stored before that, its path; and where it lay when the run last ran
# (DATA_FOLDER_KEY), which does not identify it (a copy elsewhere is the same data).
DATA_KEY, DATA_FOLDER_KEY = "settings.data", "settings.data_folder"
# Keys that may change between invocations of one experiment: raising `rounds` extends a run.
# How long a random ticket waits for its winning ticket's masks changes nothing it computes, nor does the name
# people read for its task, nor where its data lies.
MUTABLE_KEYS = ("lottery.rounds", "lottery.mask_wait", "label", DATA_FOLDER_KEY, "scoring")
# config.json's "scoring": the settings its adapter declares change only how finished rounds are scored (fairseq:
# the fairseq-generate options). A rerun may change them although they are part of what the run is (a random
# ticket must repeat them, a report tells runs apart by them); rounds already scored keep their metrics, each
# recording what scored it.
SCORING = "scoring"


def scoring_keys(config: dict) -> set:
    """The config keys ("settings.NAME") that the configuration's adapter declares change only how rounds are
    scored (the adapter running now: it knows its settings)."""
    return {f"settings.{name}" for name in (config.get(SCORING) or [])}


# Files that do not make a directory hold results: one holding only these may take another configuration.
_NOT_RESULTS = (CONFIG, LOCK)


def round_name(k: int) -> str:
    """The folder of round k, in a run directory and in a framework's checkpoint folder alike."""
    return f"round_{k:02d}"


def data_files(folder: Path) -> List[str]:
    """The files that make `folder` a dataset's rather than a run's (dictionaries, binarized splits), sorted."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file() and (
        (p.name.startswith("dict") and p.suffix == ".txt") or p.suffix in (".bin", ".idx")))


def round_of(name: str) -> Optional[int]:
    """k when `name` is a round folder's name (`round_name`), else None."""
    prefix, _, k = name.partition("_")
    return int(k) if prefix == "round" and k.isdigit() else None


def default_run_dir(framework: str, task: str, seed: int, ticket) -> Path:
    """Where a run goes when its command names no directory: runs/<framework>_<task>_s<seed>_<ticket>."""
    return Path("runs") / f"{framework}_{task}_s{seed}_{ticket}"


def upgrade(config: dict) -> dict:
    """A stored configuration as this version reads it: its lottery table completed with the values that
    settings it predates had (LotteryConfig.from_stored). The one place stored configurations are upgraded."""
    if isinstance(config, dict) and isinstance(config.get("lottery"), dict):
        try:
            lottery = LotteryConfig.from_stored(config["lottery"]).to_dict()
        except (TypeError, ValueError):
            return config  # not a configuration this version can read: compared (and refused) as it is
        config = {**config, "lottery": {**config["lottery"], **lottery}}
    return config


class RunStore:
    """Read/write access to one run directory. A writer holds an exclusive lock for its lifetime."""

    def __init__(self, path, config: Optional[dict] = None, writer: bool = True):
        self.path = Path(path)
        self.writer = writer
        self._lock: Optional[FileLock] = None
        if config is None:  # read-only view of an existing run (status, report, masks of a winning ticket)
            if not self.config_path.is_file():
                raise RunStoreError(f"{self.path} is not a lottery run directory (no {CONFIG})")
            self.config = upgrade(read_json(self.config_path))
            self.writer = False
            return
        config = json.loads(json.dumps(config, default=str))
        if writer:
            self.path.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        if self.config_path.is_file():
            stored = upgrade(read_json(self.config_path))
            rescoring = scoring_keys(config)
            diff = [d for d in config_diff(stored, config) if d[0] not in rescoring]
            if diff and writer and not self.holds_results():
                diff = []  # a start that failed before any result may be corrected freely
                stored = None
            if diff:
                self.close()
                raise RunStoreError(
                    f"run directory {self.path} holds a different configuration; refusing to reuse it. "
                    f"Differing keys: {describe_diff(diff, stored, config, 'stored', 'now', limit=None)}. "
                    f"Rerun with the stored settings to continue this run, or give the new ones another run "
                    f"directory.")
            if writer and stored != config:  # only mutable or scoring keys differ
                atomic_write_json(self.config_path, config)
        elif writer:
            atomic_write_json(self.config_path, config)
        self.config = config

    @classmethod
    def view(cls, path) -> "RunStore":
        """A read-only view that may not hold a configuration yet (a run that has not started): paths and
        progress only; `config` is {} until the run writes one."""
        store = cls.__new__(cls)
        store.path, store.writer, store._lock = Path(path), False, None
        store.config = upgrade(read_json(store.config_path)) if store.config_path.is_file() else {}
        return store

    @property
    def lottery(self) -> LotteryConfig:
        """The run's lottery configuration, with the meaning it had when it was written."""
        return LotteryConfig.from_stored(self.config.get("lottery") or {})

    @property
    def task(self) -> Optional[str]:
        return self.config.get("task")

    @property
    def framework(self) -> Optional[str]:
        return self.config.get("framework")

    def holds_results(self) -> bool:
        """True when the directory holds anything but its configuration (a snapshot, mask, checkpoint...)."""
        return holds_results(self.path)

    # --- locking -----------------------------------------------------------------------------------
    def _take_lock(self):
        try:
            self._lock = FileLock(self.lock_path, f"run directory {self.path}").acquire()
        except LotteryError as e:
            raise RunStoreError(str(e)) from None

    def holder(self) -> Optional[Holder]:
        """The live process that writes this run (None: nobody; a holder on another host counts as live)."""
        return live_holder(self.lock_path)

    def alive(self) -> Optional[bool]:
        """Whether a process writes this run, or will again: a live holder, or a last holder whose SLURM job is
        still queued (requeued after a time limit or preemption). None when SLURM cannot be asked."""
        if self.holder() is not None:
            return True
        last = read_holder(self.lock_path)
        return job_active(last.job) if last is not None and last.job else False

    def close(self):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

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
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK

    def round_dir(self, k: int) -> Path:
        return self.path / round_name(k)

    def mask_path(self, k: int) -> Path:
        return self.round_dir(k) / "mask.lthm"

    def metrics_path(self, k: int) -> Path:
        return self.round_dir(k) / "metrics.json"

    def sparsity_path(self, k: int) -> Path:
        return self.round_dir(k) / "sparsity.json"

    def started_path(self, k: int) -> Path:
        return self.round_dir(k) / "started.json"

    def snapshot_path(self, kind: str) -> Path:
        return self.path / "snapshots" / f"{kind}.pt"

    def framework_dir(self, framework: str, k: int) -> Path:
        """Where a framework keeps its own files of round k (checkpoints), inside the run directory."""
        return self.path / framework / round_name(k)

    def log_path(self, name: str = "train.log") -> Path:
        return self.path / name

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
        atomic_write_json(self.started_path(k), info)

    def read_started(self, k: int) -> Optional[dict]:
        path = self.started_path(k)
        return read_json(path) if path.is_file() else None

    def write_round(self, k: int, record: RoundRecord, sparsity: dict) -> None:
        """Sparsity report first, the record last: metrics.json is the round's completion marker."""
        self._check_writer()
        atomic_write_json(self.sparsity_path(k), sparsity)
        atomic_write_json(self.metrics_path(k), record.to_json())

    def read_round(self, k: int) -> RoundRecord:
        """Round k's record (metrics.json), as written by any version."""
        return RoundRecord.from_json(read_json(self.metrics_path(k)))

    def read_sparsity(self, k: int) -> dict:
        return read_json(self.sparsity_path(k))

    def rounds_on_disk(self) -> List[int]:
        return sorted(round_of(p.name) for p in self.path.glob("round_[0-9]*")
                      if p.is_dir() and round_of(p.name) is not None)

    def finished_rounds(self) -> List[int]:
        return [k for k in self.rounds_on_disk() if self.round_done(k)]

    def last_record(self) -> Optional[RoundRecord]:
        """The record of the last finished round, or None."""
        done = self.finished_rounds()
        return self.read_round(done[-1]) if done else None

    def progress(self, planned: Optional[int] = None, first: int = 0) -> Tuple[int, Optional[int]]:
        """(rounds finished, rounds to finish or None). `planned` and `first` (the rounds asked for and the
        first round) stand in for the configuration of a run that has not recorded one yet."""
        if self.config.get("lottery"):
            cfg = self.lottery
            first, planned = cfg.first_round, cfg.rounds
        if planned is None:
            return len(self.finished_rounds()), None
        return sum(1 for k in range(first, planned + 1) if self.round_done(k)), planned + 1 - first


def holds_results(path) -> bool:
    """True when the run directory `path` holds anything but its configuration (a snapshot, mask, checkpoint...)."""
    return any(p.is_file() and p.name not in _NOT_RESULTS and not p.name.endswith(".tmp")
               for p in Path(path).rglob("*"))


def config_diff(a: dict, b: dict):
    """[(key, value in a, value in b)] over flattened keys that differ, ignoring MUTABLE_KEYS."""
    fa, fb = _flatten(a), _flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if k not in MUTABLE_KEYS and fa.get(k) != fb.get(k)]


def describe_diff(diff, a: dict, b: dict, in_a: str, in_b: str, limit: Optional[int] = 12) -> str:
    """`config_diff(a, b)` for a message: 'KEY: IN_A x vs IN_B y; ...' (the first `limit`), a difference in the
    data's content as one entry (`data_difference`)."""
    parts = [f"{k}: {in_a} {x!r} vs {in_b} {y!r}" for k, x, y in diff if not is_data(k)]
    data = data_difference(diff, a, b, in_a, in_b)
    parts = [data] + parts if data else parts
    shown = parts if limit is None else parts[:limit]
    return "; ".join(shown) + (f" ... ({len(parts) - len(shown)} more)" if len(parts) > len(shown) else "")


def data_difference(diff, a: dict, b: dict, in_a: str, in_b: str) -> str:
    """The data's part of `config_diff(a, b)` told plainly: 'the data differs (in FILE, ...; data folder: IN_A x,
    IN_B y)', with the folders where `a` and `b` record them; '' when the data is the same."""
    keys = [k for k, _, _ in diff if is_data(k)]
    if not keys:
        return ""
    files = [k[len(DATA_KEY) + 1:] for k in keys if k != DATA_KEY]
    details = [f"in {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}"] if files else []
    folders = [f"{side} {_data_folder(c)}" for side, c in ((in_a, a), (in_b, b)) if _data_folder(c)]
    if folders:
        details.append(f"data folder: {', '.join(folders)}")
    return "the data differs" + (f" ({'; '.join(details)})" if details else "")


def _data_folder(config: dict) -> Optional[str]:
    """Where a configuration's data lay: its recorded folder, or the path that identified it."""
    flat = _flatten(config)
    folder = flat.get(DATA_FOLDER_KEY) or flat.get(DATA_KEY)
    return folder if isinstance(folder, str) else None


def is_data(key: str) -> bool:
    """Whether a flattened configuration key is (part of) the data's identity."""
    return key == DATA_KEY or key.startswith(DATA_KEY + ".")


def is_seed(key: str) -> bool:
    """Whether a flattened configuration key is a seed (the framework's, the lottery's): what repetitions of one
    experiment change, and all they may change."""
    return key == "seed" or key.endswith(".seed")


def experiment_settings(config: dict, free=()) -> dict:
    """The flattened settings that make `config` the experiment it is: every key but seeds, MUTABLE_KEYS and the
    keys in `free`. Runs with equal experiment settings are seeds of one experiment."""
    return {k: v for k, v in _flatten(config).items() if k not in MUTABLE_KEYS and k not in free and not is_seed(k)}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
