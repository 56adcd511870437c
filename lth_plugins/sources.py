"""The runs a run takes from, checked before anything is written: a random or shuffled ticket's winning run (its
masks and start points), a transferred ticket's winning run of another task (`transfer_from`) and a winning run
whose dense round 0 is reused (`dense_from`)."""
from pathlib import Path
from typing import Mapping, Optional

from .errors import LotteryConfigError, RunStoreError
from .hparams import LotteryConfig, Reset, Ticket, flag
from .masks import Mask
from .selection import matching, without_kept_dense
from .store import (CONFIG, RunStore, Snapshot, config_diff, data_difference, describe_diff, data_files, is_data,
                    is_seed, round_of, scoring_keys)
from .wait import wait_until

# What a random ticket may set differently from the winning run it takes masks from: besides these, every
# setting (the framework's whole configuration included) must match, seeds aside (store.is_seed).
RANDOM_TICKET_FREE_KEYS = ("lottery.ticket", "lottery.masks_from", "lottery.rounds", "lottery.reset",
                           "lottery.late_reset", "lottery.mask_wait", "lottery.dense_from")
# Beyond this many parameters of other shapes, a transfer source is another architecture, not another head.
MAX_KEPT_DENSE_HINT = 4
# What a run reusing another run's dense round must share with it: everything that shapes round 0.
DENSE_ROUND_KEYS = ("framework", "task", "settings")


def wait_for_config(path, wait_s: float, what: str) -> None:
    """A run directory that exists but holds no configuration yet (its run is starting) is waited for up to
    `wait_s` seconds; a folder that cannot be one is refused at once (`refuse_non_run`)."""
    path = Path(path)
    if not path.is_dir() or (path / CONFIG).is_file():
        return
    refuse_non_run(path, what)
    wait_until(lambda: (path / CONFIG).is_file(), wait_s, f"{what} {path} to write its {CONFIG}")


def refuse_non_run(path: Path, what: str) -> None:
    """A folder without a configuration that cannot become a run directory (inside a run, or holding a run's or a
    dataset's files) is refused, naming what it is."""
    if (path.parent / CONFIG).is_file():
        raise RunStoreError(f"{what} {path} is a folder inside the run {path.parent}, not a run directory: give "
                            f"{path.parent}")
    found = data_files(path) + sorted(p.name for p in path.iterdir() if p.is_dir() and (
        round_of(p.name) is not None or p.name == "snapshots"))
    if found:
        raise RunStoreError(f"{what} {path} is not a lottery run directory: it holds {found[0]} but no {CONFIG}")


def winning_run_named(field: str) -> str:
    """The winning run a setting (`masks_from`, `transfer_from`) names, as its refusals call it."""
    return f"the winning-ticket run ({field}, {flag(field)})"


def open_winning_run(path, wait_s: float = 0.0, field: str = "masks_from") -> RunStore:
    """The read-only store of the winning-ticket run whose masks a random ticket (or, `field` "transfer_from", a
    transferred ticket) uses, waited for while it starts, up to `wait_s` seconds. Every refusal names `field`."""
    named = winning_run_named(field)
    wait_for_config(path, wait_s, named)
    try:
        store = RunStore(path)
    except RunStoreError as e:
        raise RunStoreError(f"{named}: {e}") from None
    if store.lottery.ticket is not Ticket.WINNING:
        raise RunStoreError(f"{named} {path} is a {store.lottery.ticket} ticket's run: give a winning-ticket run")
    return store


def masks_available(source: RunStore) -> int:
    """The last round a winning run has (or will have) a mask for."""
    masks = [k for k in source.rounds_on_disk() if source.has_mask(k)]
    return max([source.lottery.rounds] + masks)


def _check_rounds_available(source: RunStore, available: int, rounds: int, what: str) -> None:
    """The `rounds` asked for are within the source's masks (`available`: masks_available(source))."""
    if rounds > available:
        raise LotteryConfigError(f"the {what} asks for {rounds} rounds (rounds, {flag('rounds')}) but the winning "
                                 f"run {source.path} has masks for {available}; give {flag('rounds')} {available} "
                                 f"or fewer, or extend the winning run first")


def check_ticket_source(source: RunStore, full: dict, rounds: int, params=None) -> None:
    """A random (or shuffled) ticket trains exactly as the winning run did, up to its seed; it has masks for every
    round asked for, and they fit the model. Raises LotteryConfigError before anything is written."""
    what = f"{full['lottery']['ticket']} ticket"
    diff = [(k, a, b) for k, a, b in config_diff(source.config, full)
            if k not in RANDOM_TICKET_FREE_KEYS and not is_seed(k)]
    data = data_difference(diff, source.config, full, "winning run", "now")
    others = [d for d in diff if not is_data(d[0])]
    if data:
        raise LotteryConfigError(
            f"the {what} must train on the data of its winning run {source.path}, but {data}: give it the "
            f"data folder the winning run was given"
            + (f"; other settings differ too: {describe_diff(others, source.config, full, 'winning run', 'now')}"
               if others else ""))
    if diff:
        raise LotteryConfigError(
            f"the {what} must train as the winning run {source.path} did (only the ticket type and its "
            f"seed may differ); differing settings: {describe_diff(diff, source.config, full, 'winning run', 'now')}")
    available = masks_available(source)
    _check_rounds_available(source, available, rounds, what)
    if params is not None:
        first = next((k for k in range(1, available + 1) if source.has_mask(k)), None)
        if first is not None:
            source.load_mask(first).check_matches(params, source=f"mask of round {first} in {source.path}")


def open_transfer_source(config: LotteryConfig) -> RunStore:
    """The read-only store of the winning run a transferred ticket comes from, once it has recorded its initial
    weights (waited for while it starts, up to `mask_wait`)."""
    path = config.source_dir
    source = open_winning_run(path, config.mask_wait, "transfer_from")
    wait_until(lambda: source.has_snapshot(Snapshot.INIT), config.mask_wait, f"the initial weights of {path}",
               alive=source.alive, writer=f"the winning-ticket run {path}")
    return source


def check_transfer_source(source: RunStore, config: LotteryConfig, state: Mapping, params=None) -> None:
    """A transferred ticket's model has the source's architecture: the same names and, except for parameters
    `transfer_keep_dense` names, the same shapes as the source's initial weights (`state`: this model's
    state_dict, tensors or meta tensors); the source has (or will have) masks for every round asked for, and
    they prune the parameters this run prunes (`params`, when given). Raises LotteryConfigError (MaskError for
    the masks) naming the first mismatch, before anything is written. Task, data and seeds may differ."""
    start, available = config.transfer_round, masks_available(source)
    if start is not None and start > available:
        raise LotteryConfigError(f"transfer_from {config.transfer_from!r} starts at round {start}, but the source "
                                 f"{source.path} has masks up to round {available}: start at round {available} or "
                                 f"earlier, or extend the source first")
    _check_rounds_available(source, available, config.rounds, "transferred ticket")
    theirs = source.load_snapshot(Snapshot.INIT)
    keep = set(matching(state, config.transfer_keep_dense, "transfer_keep_dense"))
    where = f"the transfer source {source.path} (task {source.task!r})"
    for name in state:
        if name not in theirs:
            raise LotteryConfigError(f"{name!r} of this model is not in {where}: a transferred ticket needs the "
                                     f"same architecture")
    differ = [n for n, v in state.items() if n not in keep and tuple(v.shape) != tuple(theirs[n].shape)]
    if differ:
        name = differ[0]
        first = (f"{name!r} has shape {list(state[name].shape)} here but {list(theirs[name].shape)} in {where}: a "
                 f"transferred ticket needs the same architecture")
        if len(differ) > MAX_KEPT_DENSE_HINT:
            raise LotteryConfigError(f"{first}; {len(differ)} parameters differ in shape: the architectures "
                                     f"differ")
        raise LotteryConfigError(
            f"{first}; to train the parameters whose shape differs (e.g. an action head across games) dense from "
            f"this run's own init, name each in transfer_keep_dense (--lottery-transfer-keep-dense PATTERN): "
            f"{', '.join(differ)}")
    extra = [n for n in theirs if n not in state]
    if extra:
        raise LotteryConfigError(f"{extra[0]!r} of {where} is not in this model: a transferred ticket needs the "
                                 f"same architecture")
    first = next((k for k in range(1, available + 1) if source.has_mask(k)), None)
    if params is not None and first is not None:
        Mask(without_kept_dense(source.load_mask(first), config).items()).check_matches(
            params, source=f"mask of round {first} in {where} (its include/exclude must be this run's)")


def dense_round_mismatch(source: dict, full: dict, where: str) -> Optional[str]:
    """Why the dense round 0 of the winning run configured as `source` (`where` names it) is not the dense round of
    a run configured as `full` (None: it is, the run may reuse it): anything that shapes round 0 differs, or the
    late snapshot this run resets to is not the one that run took. Configurations as a run directory stores
    them."""
    scoring = scoring_keys(full)  # how round 0 was scored: its metrics say, as a rerun's do
    diff = [(k, a, b) for k, a, b in config_diff(source, full)
            if k.split(".")[0] in DENSE_ROUND_KEYS and k not in scoring]
    if diff:
        return (f"{where} trained its dense round with other settings, so it is not this run's dense round; "
                f"differing: {describe_diff(diff, source, full, 'there', 'here')}")
    theirs, mine = (LotteryConfig.from_stored(c.get("lottery") or {}) for c in (source, full))
    if mine.reset is Reset.LATE and (theirs.reset is not Reset.LATE or theirs.late_reset != mine.late_reset):
        return (f"this run resets to the late snapshot at {mine.late_reset}, but {where} "
                + ("takes none (it resets to init)" if theirs.reset is not Reset.LATE
                   else f"took it at {theirs.late_reset}") + ": reuse a run with the same late-reset point")
    return None


def open_dense_run(path, full: dict, config: LotteryConfig) -> RunStore:
    """The read-only store of the winning run whose dense round 0 a run reuses (`dense_from`), once that round has
    finished (waited for while that run is alive, up to `mask_wait`). Refused, before anything is written, when
    anything that shapes round 0 differs or the late snapshot this run resets to is not there."""
    wait_for_config(path, config.mask_wait, "the dense run")
    if not (Path(path) / "config.json").is_file():
        raise LotteryConfigError(f"dense_from {path} is not a lottery run directory (no config.json)")
    source = RunStore(path)
    if source.lottery.takes_masks:
        raise LotteryConfigError(f"dense_from {path} is a {source.lottery.ticket} ticket: it has no dense round "
                                 f"of its own")
    why = dense_round_mismatch(source.config, full, f"dense_from {path}")
    if why:
        raise LotteryConfigError(why)
    wait_until(lambda: source.round_done(0), config.mask_wait, f"the dense round 0 of {path}", alive=source.alive,
               writer=f"the run {path}")
    if not source.has_snapshot(Snapshot.DENSE_TRAINED):
        raise RunStoreError(f"dense_from {path} kept no trained dense weights (snapshots/dense_trained.pt; runs "
                            f"of older versions do not): train round 0 in this run instead (drop dense_from)")
    return source
