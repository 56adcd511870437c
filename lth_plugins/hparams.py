"""Lottery hyperparameters: one dataclass that doubles as command-line flags, and its choices as enums."""
import argparse
import contextlib
import dataclasses
import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Tuple

from .errors import REFUSED, LotteryConfigError
from .wait import WRITER_START_S


class Choice(str, enum.Enum):
    """A setting with named values: compares equal to its string and is stored as it (JSON, flags)."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # messages quote settings as the user writes them
        return repr(self.value)

    def __format__(self, spec) -> str:
        return format(self.value, spec)

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value, setting: str):
        try:
            return cls(value)
        except ValueError:
            raise LotteryConfigError(f"unknown {setting} {value!r}; choose one of: {', '.join(cls.names())}",
                                     setting=setting) from None


class Schedule(Choice):
    ITERATIVE = "iterative"
    ONESHOT = "oneshot"


class Reset(Choice):
    INIT = "init"
    LATE = "late"


class Ticket(Choice):
    WINNING = "winning"
    RANDOM = "random"      # the winning ticket's masks, weights re-drawn from the model's own initializers
    SHUFFLED = "shuffled"  # a control: the winning ticket's per-layer densities at random positions, its reset
    TRANSFERRED = "transferred"  # another task's winning ticket (transfer_from): its masks and its reset point

    @property
    def short(self) -> str:
        """The folder name of this ticket's run beside the others': wt / rt / st / tt."""
        return {"winning": "wt", "random": "rt", "shuffled": "st", "transferred": "tt"}[self.value]

    @property
    def takes_masks(self) -> bool:
        """Whether the ticket trains masks made from a winning run's (`masks_from`, `transfer_from`) instead of
        pruning its own."""
        return self is not Ticket.WINNING

    @property
    def resets_to_source(self) -> bool:
        """Whether its rounds start from the weights of the winning run it takes masks from (that run's init or
        late snapshot) rather than its own or re-drawn ones."""
        return self in (Ticket.SHUFFLED, Ticket.TRANSFERRED)

    @property
    def source_field(self) -> Optional[str]:
        """The LotteryConfig field naming the winning run whose masks the ticket takes."""
        return {"random": "masks_from", "shuffled": "masks_from", "transferred": "transfer_from"}.get(self.value)

    @property
    def first_round(self) -> int:
        """Tickets that take masks start at round 1: round 0 is the dense network, the winning ticket's."""
        return 1 if self.takes_masks else 0


class Budget(Choice):
    REST = "rest"
    FULL = "full"


SCHEDULES, RESETS, TICKETS, BUDGETS = Schedule.names(), Reset.names(), Ticket.names(), Budget.names()
_CHOICES = {"schedule": Schedule, "reset": Reset, "ticket": Ticket, "budget": Budget}
# What a stored configuration written before a setting existed meant: runs made before budgets existed
# retrained the full budget after a late reset.
LEGACY_DEFAULTS = {"budget": Budget.FULL}
# Flags whose default differs from the field's: an unset lottery seed follows the run's seed (the framework's
# --seed), resolved by `LotteryConfig.from_namespace`.
FLAG_DEFAULTS = {"seed": None}
# The fields that hold lists of parameter-name patterns (a flag given several times; stored as a list).
PATTERN_FIELDS = ("include", "exclude", "transfer_keep_dense")


@dataclass(frozen=True)
class ResetPoint:
    """When the late-reset snapshot is taken: after `updates` updates or after epoch `epochs`."""

    updates: Optional[int] = None
    epochs: Optional[int] = None

    @classmethod
    def parse(cls, spec: str) -> "ResetPoint":
        m = re.fullmatch(r"\s*(\d+)\s*(u|ep)\s*", str(spec))
        if not m or int(m.group(1)) < 1:
            raise LotteryConfigError(
                f"late reset point {spec!r} is not understood: write it as '<N>u' (after N updates, "
                f"e.g. '1000u') or '<N>ep' (after epoch N, e.g. '1ep'), N >= 1"
            )
        n = int(m.group(1))
        return cls(updates=n) if m.group(2) == "u" else cls(epochs=n)

    def __str__(self):
        return f"{self.updates}u" if self.updates is not None else f"{self.epochs}ep"


def parse_transfer(spec: str) -> Tuple[str, Optional[int]]:
    """`RUN_DIR[:ROUND]` as (run directory, first round or None)."""
    path, sep, tail = str(spec).rpartition(":")
    if sep and path and not tail.strip().isdigit() and Path(path).is_dir() and not Path(spec).exists():
        raise LotteryConfigError(f"transfer_from {spec!r} is not understood: ROUND in RUN_DIR:ROUND is a round "
                                 f"number >= 1")
    if not sep or not tail.strip().isdigit():
        return str(spec), None
    if not path or int(tail) < 1:
        raise LotteryConfigError(f"transfer_from {spec!r} is not understood: write RUN_DIR or RUN_DIR:ROUND with "
                                 f"ROUND >= 1 (the first of the source's pruned rounds this run trains)")
    return path, int(tail)


def absolute_source(spec: Optional[str], with_round: bool = False) -> Optional[str]:
    """A source run (`masks_from`, `dense_from`; `transfer_from`'s RUN_DIR[:ROUND] `with_round`) as an absolute,
    normalized path: a run is the same however its source was spelled (`runs/wt`, `./runs/wt/`), and stays
    readable from any folder. A spec `parse_transfer` does not understand is left as given, for validate()."""
    if not isinstance(spec, str) or not spec:
        return spec
    try:
        path, k = parse_transfer(spec) if with_round else (spec, None)
    except LotteryConfigError:
        return spec
    path = os.path.abspath(os.path.expanduser(path))
    return path if k is None else f"{path}:{k}"


FLAG_PREFIX = "--lottery-"


def flag(name: str, prefix: str = FLAG_PREFIX) -> str:
    """The command-line flag of a LotteryConfig field: `mask_wait` -> `--lottery-mask-wait`."""
    return prefix + name.replace("_", "-")


def flag_message(error: LotteryConfigError, prefix: str = FLAG_PREFIX,
                 spell: Optional[Callable[[str], str]] = None) -> str:
    """A refused setting as a command line names it, in argparse's words: 'argument --lottery-rate: ...' (the
    message alone when it is about no one setting). `spell`: the flag of a field where a framework spells it
    otherwise than `flag(name, prefix)` (ELF: `--lottery_late_reset`)."""
    setting = getattr(error, "setting", None)
    if not setting:
        return str(error)
    return f"argument {spell(setting) if spell else flag(setting, prefix)}: {error}"


def refuse_flag(parser: argparse.ArgumentParser, message: str) -> None:
    """End on a refused lottery flag with argparse's one `PROG: error: MESSAGE` line and exit code REFUSED:
    the usage of every option would bury it."""
    parser.exit(REFUSED, f"{parser.prog}: error: {message}\n")


@contextlib.contextmanager
def short_lottery_errors(parser: argparse.ArgumentParser, prefix: str = FLAG_PREFIX):
    """argparse's own errors about a lottery flag (an unknown choice, a value of the wrong type) as one line
    (`refuse_flag`); the framework's other errors keep their usage."""
    original = parser.error

    def error(message):
        if prefix in str(message):
            refuse_flag(parser, message)
        original(message)

    parser.error = error
    try:
        yield
    finally:
        parser.error = original


# What the lottery seed seeds, in every framework's help.
LOTTERY_DRAWS = "the lottery's own draws: the random ticket's re-initialization and random pruning"


def _flag(help, default, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class LotteryConfig:
    """Everything that defines a lottery-ticket experiment, independent of the framework."""

    rounds: int = _flag("pruning rounds after the dense round 0 (the paper: 20)", default=20)
    rate: float = _flag("fraction of the surviving weights pruned per round, in (0, 1) (the paper: 0.2)", default=0.2)
    schedule: Schedule = _flag("iterative: prune the previous round's trained ticket; oneshot: prune the dense "
                               "trained network straight to each round's sparsity", default=Schedule.ITERATIVE,
                               choices=SCHEDULES)
    pruner: str = _flag("pruning strategy (entry point in lth_plugins.pruners)", default="global_magnitude")
    reset: Reset = _flag("winning tickets are reset to the weights at init or at the late-reset point",
                         default=Reset.LATE, choices=RESETS)
    late_reset: str = _flag("late-reset point: '<N>u' after N updates or '<N>ep' after epoch N", default="1ep")
    budget: Budget = _flag("rest: a ticket reset to the late snapshot at update j trains the rest of the dense "
                           "schedule (updates j+1..T; update counter, lr schedule and epoch counter continue from "
                           "j, as open_lth rewinds), so every round ends at update T; full: it trains T updates "
                           "again from 0, j more than the dense round", default=Budget.REST, choices=BUDGETS)
    ticket: Ticket = _flag("winning: prune and reset to the snapshot; random: the winning ticket's masks "
                           "(masks-from) with weights re-drawn from the model's initializers; shuffled (a control): "
                           "the winning ticket's per-layer densities at random positions within each layer, reset "
                           "to the winning run's snapshot; transferred: another task's winning ticket "
                           "(transfer-from)", default=Ticket.WINNING, choices=TICKETS)
    masks_from: Optional[str] = _flag("run directory of the winning ticket whose masks a random or shuffled ticket "
                                      "uses", default=None)
    include: Tuple[str, ...] = _flag("fnmatch pattern of parameter names to prune (none given: "
                                     "all parameters, weights and biases)", default=())
    exclude: Tuple[str, ...] = _flag("fnmatch pattern of parameter names never pruned", default=())
    seed: int = _flag(f"seed of {LOTTERY_DRAWS} (default: the run's seed, so that runs with other seeds draw other "
                      f"random tickets)", default=0)
    mask_wait: float = _flag("random, shuffled or transferred ticket: the most seconds to wait for a mask the "
                             "winning ticket has not written yet (the two may run side by side); it waits only "
                             f"while the winning run is alive, giving one not running {WRITER_START_S:g} s to "
                             "start; 0: fail at once", default=7 * 24 * 3600.0)
    dense_from: Optional[str] = _flag("run directory of a winning run whose dense round 0 (and snapshots) this "
                                      "run reuses instead of training it again: ablations of one seed share it; "
                                      "its framework settings must equal this run's", default=None)
    transfer_from: Optional[str] = _flag("RUN_DIR[:ROUND]: a transferred ticket (the ticket becomes "
                                         "'transferred'): round k trains round k's mask of that winning run, "
                                         "from its reset point (its init or late snapshot), on this run's task; "
                                         "the model must have its parameter names and shapes; other settings "
                                         "may differ. No dense round of its own; with :ROUND it starts at round "
                                         "ROUND", default=None)
    transfer_keep_dense: Tuple[str, ...] = _flag("fnmatch pattern of parameters a transferred ticket keeps "
                                                 "dense, from this run's own init, whatever their shape in the "
                                                 "source run (e.g. an action head across games)",
                                                 default=())

    def __post_init__(self):
        for name in PATTERN_FIELDS:  # a lone string is one pattern, not a sequence of one-character patterns
            value = getattr(self, name)
            setattr(self, name, (value,) if isinstance(value, str) else tuple(value or ()))
        for name, kind in _CHOICES.items():  # an unknown value stays as given: validate() names it
            value = getattr(self, name)
            if value in kind.names():
                setattr(self, name, kind(value))
        if self.transfer_from and self.ticket is Ticket.WINNING:  # the flag alone makes a transferred ticket
            self.ticket = Ticket.TRANSFERRED
        for name in ("masks_from", "dense_from", "transfer_from"):
            setattr(self, name, absolute_source(getattr(self, name), with_round=name == "transfer_from"))

    @classmethod
    def from_stored(cls, stored: dict) -> "LotteryConfig":
        """The configuration a run directory recorded (its "lottery" table), with the meaning it had when it was
        written: settings it predates get their legacy value, settings this version no longer knows are
        dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {**LEGACY_DEFAULTS, **{k: v for k, v in (stored or {}).items() if k in names}}
        return cls(**values)

    @property
    def reset_point(self) -> ResetPoint:
        return ResetPoint.parse(self.late_reset)

    @property
    def is_random(self) -> bool:
        """The random ticket: its weights are re-drawn."""
        return self.ticket is Ticket.RANDOM

    @property
    def takes_masks(self) -> bool:
        """A random or shuffled ticket: masks from the winning run `masks_from`, no dense round of its own."""
        return Ticket(self.ticket).takes_masks

    @property
    def first_round(self) -> int:
        """0; 1 for a ticket that takes masks; ROUND for a transferred ticket given RUN_DIR:ROUND."""
        return self.transfer_round or Ticket(self.ticket).first_round

    @property
    def source_dir(self) -> Optional[str]:
        """The winning run whose masks this ticket trains (masks_from, or transfer_from's RUN_DIR), or None."""
        name = Ticket(self.ticket).source_field if self.ticket in TICKETS else None
        value = getattr(self, name) if name else None
        return parse_transfer(value)[0] if value and name == "transfer_from" else value

    @property
    def transfer_round(self) -> Optional[int]:
        return parse_transfer(self.transfer_from)[1] if self.transfer_from else None

    @property
    def effective_budget(self) -> Budget:
        """The budget only tells rounds that start from a late snapshot apart: without a late reset every round
        trains from update 0, which both budgets mean."""
        return self.budget if self.reset is Reset.LATE else Budget.REST

    @property
    def reset_strategy(self) -> str:
        """The name of the reset plugin this configuration uses."""
        return "random" if self.is_random else str(self.reset)  # a source's reset: LotteryRun takes its own

    def validate(self, total_updates: Optional[int] = None, total_epochs: Optional[int] = None,
                 updates_per_epoch: Optional[int] = None) -> "LotteryConfig":
        """Raise LotteryConfigError naming the first invalid setting; pass every training length known (and
        the updates per epoch, to compare '<N>u' with epochs and '<N>ep' with updates) to check the late-reset
        point against it."""
        from .registry import check_available

        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise LotteryConfigError(f"rounds must be an integer >= 1, got {self.rounds!r}", setting="rounds")
        if not (isinstance(self.rate, (int, float)) and 0.0 < float(self.rate) < 1.0):
            raise LotteryConfigError(f"prune rate must lie strictly between 0 and 1, got {self.rate!r}",
                                     setting="rate")
        for name, kind in _CHOICES.items():
            kind.parse(getattr(self, name), name)
        if not (isinstance(self.mask_wait, (int, float)) and self.mask_wait >= 0):
            raise LotteryConfigError(f"mask_wait must be a number of seconds >= 0, got {self.mask_wait!r}",
                                     setting="mask_wait")
        check_available("lth_plugins.pruners", self.pruner)
        check_available("lth_plugins.resets", self.reset_strategy)
        point = self.reset_point
        if self.ticket is Ticket.TRANSFERRED and not self.transfer_from:
            raise LotteryConfigError("a transferred ticket needs the winning run it comes from: give transfer_from "
                                     "(--lottery-transfer-from RUN_DIR[:ROUND])")
        if self.takes_masks and not self.source_dir:
            raise LotteryConfigError(f"a {self.ticket} ticket needs the winning ticket's masks: give masks_from "
                                     "(--lottery-masks-from RUN_DIR), the run directory of the winning ticket")
        if self.masks_from and Ticket(self.ticket).source_field != "masks_from":
            raise LotteryConfigError("masks_from is only used by random and shuffled tickets (ticket='random' or "
                                     "'shuffled')")
        if self.transfer_from and self.ticket is not Ticket.TRANSFERRED:
            raise LotteryConfigError(f"transfer_from makes a transferred ticket; it cannot be a {self.ticket} "
                                     f"ticket (a random or shuffled ticket of a target task takes its masks from "
                                     f"that task's own winning run)")
        if self.transfer_keep_dense and not self.transfer_from:
            raise LotteryConfigError("transfer_keep_dense is only used by transferred tickets (transfer_from)")
        if self.transfer_from:
            first = parse_transfer(self.transfer_from)[1]
            if first is not None and first > self.rounds:
                raise LotteryConfigError(f"transfer_from {self.transfer_from!r} starts at round {first}, after "
                                         f"the last round {self.rounds} (rounds, {flag('rounds')}): give "
                                         f"{flag('rounds')} {first} or more (the source needs masks that far), "
                                         f"or start at an earlier round")
        if self.takes_masks and self.dense_from:
            raise LotteryConfigError(f"dense_from is only used by winning tickets: a {self.ticket} ticket has no "
                                     "dense round of its own (it takes its winning run's masks)")
        if self.reset is Reset.LATE and not self.takes_masks:
            if point.updates is not None and total_updates is not None and point.updates >= total_updates:
                raise LotteryConfigError(
                    f"late reset point {point} lies beyond the training length of {total_updates} updates")
            if point.epochs is not None and total_epochs is not None and point.epochs >= total_epochs:
                raise LotteryConfigError(
                    f"late reset point {point} lies beyond the training length of {total_epochs} epochs")
            if updates_per_epoch:
                upe = int(updates_per_epoch)
                if point.epochs is not None and total_updates is not None and point.epochs * upe >= total_updates:
                    raise LotteryConfigError(
                        f"late reset point {point} ({point.epochs * upe} updates at {upe} updates per epoch) lies "
                        f"beyond the training length of {total_updates} updates "
                        f"(about {total_updates / upe:.1f} epochs)")
                if point.updates is not None and total_epochs is not None and point.updates >= total_epochs * upe:
                    raise LotteryConfigError(
                        f"late reset point {point} lies beyond the training length of {total_epochs} epochs "
                        f"({total_epochs * upe} updates at {upe} updates per epoch)")
        return self

    def to_dict(self) -> dict:
        """Plain JSON values (choices as their strings)."""
        d = dataclasses.asdict(self)
        for name in PATTERN_FIELDS:
            d[name] = list(d[name])
        for name in _CHOICES:
            d[name] = str(d[name])
        return d

    # --- flags ---------------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, prefix: str = FLAG_PREFIX,
                      defaults: Optional[dict] = None, group_title: str = "lottery ticket") -> None:
        """Add one flag per field (`--lottery-rate` ...); `defaults` overrides field defaults."""
        group = parser.add_argument_group(group_title)
        defaults = defaults or {}
        for f in dataclasses.fields(cls):
            default = defaults.get(f.name, FLAG_DEFAULTS.get(f.name, f.default))
            default = default.value if isinstance(default, Choice) else default
            kw = {"help": f.metadata["help"] + (f" (default: {default})" if default is not None else "")}
            if f.name in PATTERN_FIELDS:
                kw.update(action="append", default=list(default) or None, metavar="PATTERN",
                          help=f.metadata["help"] + "; repeatable")
            else:
                kw.update(type=_field_type(f), default=default)
                if f.metadata["choices"]:
                    kw["choices"] = f.metadata["choices"]
            group.add_argument(flag(f.name, prefix), dest=_dest(prefix, f.name), **kw)

    @classmethod
    def from_namespace(cls, ns, prefix: str = FLAG_PREFIX, run_seed: Optional[int] = None) -> "LotteryConfig":
        """The configuration of parsed flags; an unset lottery seed becomes `run_seed`, the run's seed (the
        framework's --seed): the one place it is resolved."""
        values = {}
        for f in dataclasses.fields(cls):
            dest = _dest(prefix, f.name)
            if hasattr(ns, dest):
                v = getattr(ns, dest)
                values[f.name] = tuple(v or ()) if f.name in PATTERN_FIELDS else v
        if values.get("seed", FLAG_DEFAULTS["seed"]) is None:
            if run_seed is None:
                raise LotteryConfigError(f"no lottery seed: give {prefix}seed, or the run's seed it follows")
            values["seed"] = int(run_seed)
        return cls(**values)


def _dest(prefix: str, name: str) -> str:
    return prefix.lstrip("-").replace("-", "_") + name


def _field_type(f):
    return f.type if f.type in (int, float) else str


def survivors(n: int, rate: float, round_index: int) -> int:
    """Entries left after `round_index` rounds of pruning `rate` of the survivors: round(n * (1-rate)^k)."""
    return kept(n, (1.0 - rate) ** round_index)


def kept(n: int, density: float) -> int:
    """Entries of n kept at `density` = (1-rate)^k: the same float product as `survivors`, so the two agree
    exactly (computing it as 1 - (1 - density) can round the other way)."""
    return int(round(n * density))


def fraction_pruned(rate: float, round_index: int) -> float:
    """The paper's r_k = 1 - (1-p)^k."""
    return 1.0 - (1.0 - rate) ** round_index
