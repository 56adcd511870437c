"""Collect run stores for a report: load and check each run, then group the runs by task.

A run's *variant* is how its masks were made and its rounds trained: (schedule, reset, rate, budget, include,
exclude). A random or shuffled ticket has no masks of its own: it takes the variant of the winning-ticket run named
by its `masks_from`; a transferred ticket takes the variant of its source (`transfer_from`, a run of another
task), and stays an experiment of its own task. Runs of one task with different variants (e.g. prune rates)
share the fraction-pruned axis as separate series; different frameworks or metrics cannot share a figure.

Runs are seeds of one curve only when they are one experiment: every setting but seeds equal (the core's rule,
`experiment_settings`), besides the variant and the ticket, which the figures separate. Runs of one task that
differ in another setting (learning rate, model depth, data...) are separate experiments with figures of their
own, named by the settings that tell them apart.
"""
import hashlib
import json
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import LotteryError, RunStoreError
from ..hparams import Budget, LotteryConfig, Reset, Schedule, Ticket
from ..record import RoundRecord
from ..store import CONFIG, RunStore, experiment_settings


class ReportError(LotteryError):
    """The runs given to `lth report` cannot make a report (bad directory, empty run, mixed tasks...)."""


# Settings in which the runs of one experiment's figures may differ: the ticket and its variant are drawn as
# separate series, and the run directories a run takes masks or its dense round from differ between seeds.
DRAWN_APART = ("lottery.ticket", "lottery.masks_from", "lottery.dense_from", "lottery.schedule", "lottery.reset",
               "lottery.rate", "lottery.budget", "lottery.include", "lottery.exclude", "lottery.transfer_from",
               "lottery.transfer_keep_dense")


def task_identity(config: dict) -> str:
    """The task as a researcher names it: the label its adapter recorded (fairseq's `translation` is every pair's
    task: "translation en-de"); for a run recorded without one, the task with the language pair its settings give."""
    if config.get("label"):
        return str(config["label"])
    task = str(config.get("task"))
    settings = config.get("settings") if isinstance(config.get("settings"), dict) else {}
    source, target = settings.get("source_lang"), settings.get("target_lang")
    if source or target:
        task += f" {source or '?'}-{target or '?'}"
    return task


def experiment_of(config: dict) -> Dict[str, Any]:
    """The settings that make a run's curve the experiment it is (seeds, the ticket and its variant aside)."""
    return experiment_settings(config, free=DRAWN_APART)


@dataclass(frozen=True)
class Variant:
    schedule: Schedule
    reset: Reset
    include: Tuple[str, ...]
    exclude: Tuple[str, ...]
    rate: float
    budget: Budget

    @classmethod
    def of(cls, config: LotteryConfig) -> "Variant":
        return cls(schedule=config.schedule, reset=config.reset, include=tuple(config.include),
                   exclude=tuple(config.exclude), rate=float(config.rate), budget=config.effective_budget)

    @classmethod
    def paper(cls) -> "Variant":
        """The paper's method: the defaults of LotteryConfig."""
        return cls.of(LotteryConfig())

    @property
    def selection(self) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
        return self.include, self.exclude

    @property
    def method(self) -> tuple:
        return self.schedule, self.reset, self.rate, self.budget

    def method_label(self, show_rate: bool = False) -> str:
        schedule = "one-shot" if self.schedule is Schedule.ONESHOT else str(self.schedule)
        return (f"{schedule}, {'late reset' if self.reset is Reset.LATE else 'reset to init'}"
                + (f", p={self.rate:g}" if show_rate else "")
                + (", full budget after the reset" if self.budget is Budget.FULL else ""))

    def selection_label(self) -> str:
        if not self.include and not self.exclude:
            return "all weights pruned"
        parts = []
        if self.include:
            parts.append("pruning only " + ", ".join(self.include))
        if self.exclude:
            parts.append("excluding " + ", ".join(self.exclude))
        return "; ".join(parts)

    def sort_key(self):
        """The paper's default first: all weights, iterative, late reset."""
        paper = Variant.paper()
        return (bool(self.include or self.exclude), self.include, self.exclude,
                self.schedule != paper.schedule, str(self.schedule), self.reset != paper.reset, str(self.reset),
                self.budget != paper.budget, self.rate != paper.rate, self.rate)


@dataclass
class Run:
    path: Path
    task: str
    framework: str
    ticket: Ticket
    seed: int
    rate: float
    planned_rounds: int
    variant: Variant
    masks_from: Optional[str]        # the winning run whose masks it trains (masks_from, transfer_from's RUN_DIR)
    source_task: Optional[str] = None  # a transferred ticket's source task (task_identity), when readable
    source_experiment: Dict[str, Any] = field(default_factory=dict)  # experiment_of the source's configuration
    kept_dense: Tuple[str, ...] = ()   # a transferred ticket's parameters trained dense (transfer_keep_dense)
    experiment: Dict[str, Any] = field(default_factory=dict)  # experiment_of its configuration
    records: Dict[int, RoundRecord] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def transfer_source(self) -> str:
        """What a transferred ticket's curve is named by: its source's task, or the source directory when that
        cannot be read, and the parameters it keeps dense (their weights count in no fraction pruned)."""
        kept = f" ({', '.join(self.kept_dense)} kept dense)" if self.kept_dense else ""
        return (self.source_task or f"{self.masks_from} (unreadable)") + kept

    @property
    def transfer_key(self) -> Tuple[str, str]:
        """What makes transferred tickets one curve: their source's name and its experiment in full (a name may
        shorten two experiments' settings alike)."""
        return self.transfer_source, json.dumps(self.source_experiment, sort_keys=True, default=str)

    @property
    def primary(self) -> str:
        return next(iter(self.records.values())).primary

    @property
    def higher_is_better(self) -> bool:
        return bool(next(iter(self.records.values())).higher_is_better)

    def value(self, k: int) -> Optional[float]:
        """Round k's primary metric; None when the round has no value (e.g. no game finished)."""
        value = self.records[k].value
        return None if value is None else float(value)

    def partial(self, k: int) -> Optional[str]:
        """Why round k's value stands on less than its metric asks for (e.g. fewer than L games), or None."""
        return self.records[k].partial

    def sparsity(self, k: int) -> dict:
        store = RunStore(self.path)
        try:
            return store.read_sparsity(k)
        except (OSError, ValueError) as e:
            raise ReportError(f"{store.sparsity_path(k)} is missing or unreadable ({e})") from None


def expand_paths(paths) -> List[Path]:
    """Each argument is a run directory, or a folder whose immediate subdirectories are run directories."""
    out: List[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ReportError(f"{p}: no such directory")
        if not p.is_dir():
            raise ReportError(f"{p} is a file, not a lottery run directory")
        if (p / CONFIG).is_file():
            out.append(p)
            continue
        children = sorted(c for c in p.iterdir() if c.is_dir() and (c / CONFIG).is_file())
        if not children:
            raise ReportError(f"{p} is not a lottery run directory (no {CONFIG}) and holds none; "
                              f"give the run directories written by a lottery run")
        out.extend(children)
    seen, unique = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def _read_record(store: RunStore, k: int) -> RoundRecord:
    try:
        return store.read_round(k)
    except (OSError, ValueError, TypeError) as e:
        raise ReportError(f"{store.metrics_path(k)} is unreadable or lacks the fraction pruned, the primary "
                          f"metric or its value; was it written by a lottery run? ({e})") from None


def load_run(path) -> Run:
    path = Path(path)
    try:
        store = RunStore(path)
        lottery = store.lottery if isinstance(store.config.get("lottery"), dict) else None
    except RunStoreError as e:
        raise ReportError(str(e)) from None
    except (ValueError, TypeError, AttributeError) as e:
        raise ReportError(f"{path / CONFIG} is unreadable ({e})") from None
    if lottery is None or "task" not in store.config:
        raise ReportError(f"{path} is not a lottery run directory ({CONFIG} lacks the 'lottery' or 'task' key)")
    run = Run(path=path, task=task_identity(store.config), framework=str(store.framework or "?"),
              ticket=lottery.ticket, seed=int(lottery.seed), rate=float(lottery.rate),
              planned_rounds=int(lottery.rounds), variant=Variant.of(lottery), masks_from=lottery.source_dir,
              kept_dense=tuple(sorted(lottery.transfer_keep_dense)), experiment=experiment_of(store.config))
    for k in store.finished_rounds():
        rec = _read_record(store, k)
        value = rec.value
        valid = ((isinstance(value, Real) and not isinstance(value, bool))
                 or (value is None and rec.primary in rec.metrics and rec.partial is not None))
        if not valid:
            raise ReportError(f"{store.metrics_path(k)} lacks the fraction pruned, the primary metric or its "
                              f"value; was it written by a lottery run?")
        run.records[k] = rec
    if not run.records:
        raise ReportError(f"{path} is an empty run: no round has finished yet, so there is nothing to report; "
                          f"leave it out or wait for its first round to finish")
    primaries = {(r.primary, bool(r.higher_is_better)) for r in run.records.values()}
    if len(primaries) > 1:
        raise ReportError(f"the rounds of {path} report different primary metrics: {sorted(primaries)}")
    return run


def _resolve_random_tickets(runs: List[Run]) -> None:
    """Give each random or shuffled ticket the variant and the experiment (and check the task) of the winning run
    its masks come from: its own reset settings are free, the rest equals the winning run's. A transferred ticket
    takes its source's variant only."""
    winners = [r for r in runs if r.ticket is Ticket.WINNING]
    by_path = {r.path.resolve(): r for r in winners}
    for run in runs:
        if not run.ticket.takes_masks or not run.masks_from:
            continue
        src = Path(run.masks_from)
        candidates = [src] if src.is_absolute() else [src, run.path.parent / src.name]
        source_cfg, where = None, str(src)
        for c in candidates:
            if c.resolve() in by_path:
                w = by_path[c.resolve()]
                source_cfg, where = {"task": w.task, "variant": w.variant, "experiment": w.experiment}, str(w.path)
                break
        if source_cfg is None and run.ticket is not Ticket.TRANSFERRED:  # its source's name is no other task's
            same_name = [w for w in winners if w.name == src.name]  # the runs were moved together
            if len(same_name) == 1:
                w = same_name[0]
                source_cfg, where = {"task": w.task, "variant": w.variant, "experiment": w.experiment}, str(w.path)
        if source_cfg is None:
            for c in candidates:
                if (c / CONFIG).is_file():
                    try:
                        store = RunStore(c)
                        source_cfg = {"task": task_identity(store.config), "variant": Variant.of(store.lottery),
                                      "experiment": experiment_of(store.config)}
                    except (RunStoreError, ValueError, TypeError) as e:
                        raise ReportError(f"{c / CONFIG} is unreadable ({e})") from None
                    where = str(c)
                    break
        if source_cfg is None:  # the winning run is gone: its own config is the best guess
            continue
        if run.ticket is Ticket.TRANSFERRED:  # another task's masks, trained as an experiment of its own task
            run.variant, run.rate = source_cfg["variant"], source_cfg["variant"].rate
            run.source_task, run.source_experiment = source_cfg["task"], source_cfg["experiment"]
            continue
        if source_cfg["task"] != run.task:
            raise ReportError(f"random ticket {run.path} (task {run.task!r}) takes its masks from {where}, "
                              f"a run of task {source_cfg['task']!r}: runs of different tasks are mixed")
        run.variant, run.experiment = source_cfg["variant"], source_cfg["experiment"]


def _tell_transfer_sources_apart(runs: List[Run]) -> None:
    """Transferred tickets whose source task has several experiments (another build of the data, other flags),
    among the runs reported or the transfers' sources, get in their source's name the settings that tell those
    experiments apart, as the source task's own figures are named."""
    for task in {r.source_task for r in runs if r.ticket is Ticket.TRANSFERRED and r.source_task}:
        transferred = [r for r in runs if r.ticket is Ticket.TRANSFERRED and r.source_task == task]
        experiments = [r.experiment for r in runs if r.task == task and r.ticket is not Ticket.TRANSFERRED] + \
            [r.source_experiment for r in transferred]
        keys = _keys_telling_apart(experiments)
        if keys:
            for r in transferred:
                r.source_task = experiment_name(task, {k: r.source_experiment.get(k) for k in keys})


def _keys_telling_apart(experiments: List[Dict[str, Any]]) -> List[str]:
    """The settings whose values differ among these experiments, sorted (none: they are one experiment)."""
    return sorted(k for k in {k for e in experiments for k in e}
                  if len({json.dumps(e.get(k), sort_keys=True, default=str) for e in experiments}) > 1)


@dataclass
class TaskGroup:
    """Every run of one experiment: the material of its figures and tables. `task` names it: the task, followed
    by `settings` (the settings that tell it apart) when the task's runs make several experiments."""
    task: str
    runs: List[Run]
    settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def framework(self) -> str:
        return self.runs[0].framework

    @property
    def settings_note(self) -> str:
        """The footnote to a name whose settings are shortened: every setting that tells the experiment apart."""
        if not self.settings:
            return ""
        return f"Told apart from the task's other experiments by: {settings_listing(self.settings)}."

    @property
    def primary(self) -> str:
        return self.runs[0].primary

    @property
    def higher_is_better(self) -> bool:
        return self.runs[0].higher_is_better

    @property
    def rates(self) -> List[float]:
        return sorted({r.rate for r in self.runs})

    @property
    def rate(self) -> float:
        """The smallest prune rate of the runs: the axis' ticks are its rounds."""
        return self.rates[0]

    @property
    def seeds(self) -> int:
        return len({r.seed for r in self.runs})

    def variants(self, ticket: Optional[Ticket] = None) -> List[Variant]:
        vs = {r.variant for r in self.runs if ticket is None or r.ticket == ticket}
        return sorted(vs, key=Variant.sort_key)

    def runs_of(self, variant: Variant, ticket: Ticket) -> List[Run]:
        return [r for r in self.runs if r.variant == variant and r.ticket == ticket]

    def default_variant(self) -> Variant:
        """The main figure's variant: all weights, iterative, late reset, as far as the runs have them."""
        return (self.variants(Ticket.WINNING) or self.variants())[0]

    def dense_runs(self) -> List[Run]:
        """Runs whose round 0 (the unpruned network) is on disk, of the default variant when it has some; one per
        seed (variants of one seed train the same dense round, which counts once)."""
        dense = [r for r in self.runs if r.ticket is Ticket.WINNING and 0 in r.records]
        default = [r for r in dense if r.variant == self.default_variant()]
        by_seed: Dict[int, Run] = {}
        for r in default or dense:
            by_seed.setdefault(r.seed, r)
        return list(by_seed.values())


def _check_same(task: str, runs: List[Run], what: str, key) -> None:
    values: Dict[str, List[str]] = {}
    for r in runs:
        values.setdefault(str(key(r)), []).append(str(r.path))
    if len(values) > 1:
        listing = "; ".join(f"{v}: {', '.join(ps)}" for v, ps in sorted(values.items()))
        raise ReportError(f"runs of task {task!r} differ in {what} ({listing}); one figure would mix "
                          f"different experiments: check the run directories, or report them separately")


def group_by_task(runs: List[Run]) -> List[TaskGroup]:
    by_task: Dict[str, List[Run]] = {}
    for r in runs:
        by_task.setdefault(r.task, []).append(r)
    groups = []
    for task in sorted(by_task):
        rs = by_task[task]
        _check_same(task, rs, "framework", lambda r: r.framework)
        _check_same(task, rs, "primary metric", lambda r: f"{r.primary} "
                    f"({'higher' if r.higher_is_better else 'lower'} is better)")
        for name, settings, members in _experiments(task, rs):
            _check_repetitions(name, members)
            groups.append(TaskGroup(name, sorted(members, key=lambda r: (str(r.ticket), r.variant.sort_key(),
                                                                         r.seed)), settings))
    return groups


def _experiments(task: str, runs: List[Run]):
    """[(name, settings that tell it apart, runs)] of the experiments among one task's runs."""
    by_key: Dict[str, List[Run]] = {}
    for r in runs:
        by_key.setdefault(json.dumps(r.experiment, sort_keys=True, default=str), []).append(r)
    if len(by_key) == 1:
        return [(task, {}, runs)]
    members = list(by_key.values())
    keys = _keys_telling_apart([rs[0].experiment for rs in members])
    out = []
    for rs in members:
        settings = {k: rs[0].experiment.get(k) for k in keys}
        out.append((experiment_name(task, settings), settings, rs))
    return sorted(out, key=lambda e: e[0])


def experiment_name(task: str, settings: Dict[str, Any]) -> str:
    """How one of a task's several experiments is named: the task and, briefly, the settings that tell it apart."""
    return f"{task} ({settings_label(settings)})"


def settings_label(settings: Dict[str, Any], most: int = 3) -> str:
    """`key=value, ...` of settings that tell experiments apart, briefly: a framework's settings by their own name,
    long values cut, a nested setting (e.g. a data fingerprint of many files) as one short digest of its values.
    `settings_listing` gives them in full."""
    def value(v) -> str:
        v = v[0] if isinstance(v, list) and len(v) == 1 else v
        text = "unset" if v is None else str(v)
        return text if len(text) <= 18 else text[:17] + "…"

    parts: Dict[str, str] = {}
    nested: Dict[str, Dict[str, Any]] = {}
    for k, v in settings.items():
        name = k.removeprefix("settings.")
        top, _, rest = name.partition(".")
        if k.startswith("settings.") and rest:
            nested.setdefault(top, {})[rest] = v
            parts[top] = ""
        else:
            parts[name] = f"{name}={value(v)}"
    for top, values in nested.items():
        digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:6]
        parts[top] = f"{top} #{digest}"
    shown = list(parts.values())
    return ", ".join(shown[:most]) + (f", +{len(shown) - most} more" if len(shown) > most else "")


def settings_listing(settings: Dict[str, Any]) -> str:
    """Every setting that tells an experiment apart, in full: the footnote to its short `settings_label`."""
    return "; ".join(f"{k.removeprefix('settings.')}={'unset' if v is None else v}" for k, v in settings.items())


def _check_repetitions(name: str, runs: List[Run]) -> None:
    """Two runs of one experiment with the same ticket, variant and lottery seed repeat each other; so do two
    transferred tickets of one seed from sources of the same experiment, which one curve would average as two
    seeds."""
    seen: Dict[tuple, Run] = {}
    for r in runs:
        source = (r.transfer_key if r.ticket is Ticket.TRANSFERRED
                  else Path(r.masks_from).name if r.masks_from else None)
        key = (r.variant, r.ticket, r.seed, source)
        if key in seen and r.ticket is Ticket.TRANSFERRED:
            raise ReportError(f"{seen[key].path} and {r.path} are transferred tickets from {r.transfer_source} "
                              f"with the same lottery seed {r.seed} (sources {seen[key].masks_from} and "
                              f"{r.masks_from}): one curve would average them as if they were two seeds; give "
                              f"each its own lottery seed (--lottery-seed), or report them separately")
        if key in seen:
            raise ReportError(f"{seen[key].path} and {r.path} are the same experiment (task {name!r}, "
                              f"{r.ticket} ticket, {r.variant.method_label()}, lottery seed {r.seed}); "
                              f"give only one of them, or, if they are repetitions with other framework "
                              f"seeds, give each its own lottery seed (--lottery-seed, as lth sweep does)")
        seen[key] = r


def collect(paths) -> List[TaskGroup]:
    """Load every run directory given (or held by a given folder), check them, and group them by task."""
    if not paths:
        raise ReportError("no run directories given")
    runs = [load_run(p) for p in expand_paths(paths)]
    _resolve_random_tickets(runs)
    _tell_transfer_sources_apart(runs)
    return group_by_task(runs)
