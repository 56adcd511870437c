"""The sweep config file (TOML or JSON) and the jobs it expands into (every key: docs/sweep.md).

Every (task, ablation, seed) gets a winning-ticket job and, pipelined behind it, a random-ticket job with its
masks. A job is the framework's own resumable command, with its run directory in
SWEEP_DIR/runs/<task>/<ablation>/s<seed>/{wt,rt}. A job's identity is its command without the settings that
may change (rounds, the mask wait, how rounds are scored); its resources and port are not part of it. Which
winning ticket trains each dense round and which reuse it is the sweep directory's to say (sweep/dense.py), as are
the ports.
"""
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import SweepError
from ..hparams import TICKETS, LotteryConfig, Ticket, flag
from ..store import MUTABLE_KEYS
from . import resources
from .vocabulary import DEFAULT_RETRIES, Executor

# The lottery settings the sweep gives every job from its grid (rounds, seeds, tickets, a random ticket's masks, a
# shared dense round): an ablation, `lottery` or an experiment's args may not set them.
GRID_SETTINGS = ("rounds", "seed", "ticket", "masks_from", "mask_wait", "dense_from")
GRID_FLAGS = tuple(flag(name) for name in GRID_SETTINGS)
DENSE_FLAG = flag("dense_from")
# Flags whose value may change between invocations (the lottery keys of the run store's MUTABLE_KEYS): not part of
# a job's identity, nor are its target's scoring_flags.
MUTABLE_FLAGS = tuple(flag(key.split(".", 1)[1]) for key in MUTABLE_KEYS if key.startswith("lottery."))
MAX_IDLE_S = 300
# Jobs at once on the local executor when the config does not say (SLURM: all, the cluster queues them).
LOCAL_MAX_PARALLEL = 2


def flag_of(arg: str) -> str:
    """The flag an argument sets, spelled with dashes (`--lottery_rounds=3` -> `--lottery-rounds`): frameworks
    differ in spelling."""
    return arg.split("=", 1)[0].replace("_", "-")


@dataclass
class Job:
    """One ticket of one (task, ablation, seed): a command with its own run directory."""
    name: str                      # "<task>/<ablation>/s<seed>/wt"
    framework: str
    task: str
    ablation: str
    seed: int
    ticket: str
    run_dir: Path
    argv: List[str]
    winning: Optional[str] = None  # a random ticket: the name of its winning-ticket job
    resources: Dict = field(default_factory=dict)   # executor parameters (sweep/resources.py vocabulary)
    port_flag: Optional[str] = None  # the command's distributed-port flag, if it takes one
    scoring_flags: List[str] = field(default_factory=list)  # its target's: they may change too
    port: Optional[int] = None       # this job's own port (the sweep directory assigns it)
    checkpoints: List[str] = field(default_factory=list)  # globs of the framework's resume points in run_dir
    # a winning ticket that reuses another job's dense round 0 (sweep/dense.py): that job's name (another sweep's:
    # "SWEEP_DIR:name") and its run directory
    dense_from: Optional[str] = None
    dense_dir: Optional[str] = None
    dense_flag: Optional[str] = None  # a winning ticket: its command's spelling of --lottery-dense-from

    @property
    def file_stem(self) -> str:
        return self.name.replace("/", "__")

    def command(self) -> List[str]:
        """The argv the job runs: its command with its own distributed port."""
        if self.port_flag and self.port is not None:
            return self.argv + [self.port_flag, str(self.port)]
        return list(self.argv)

    def identity(self, argv: Optional[List[str]] = None) -> List[str]:
        """What the job computes: its command (or `argv`, e.g. a stored one of it) without the flags whose value
        may change (MUTABLE_FLAGS and its target's scoring_flags)."""
        return self._split(argv)[0]

    def scoring(self, argv: Optional[List[str]] = None) -> List[str]:
        """How the job scores its rounds: its command's (or `argv`'s) scoring flags with their values."""
        return self._split(argv)[1]

    def _split(self, argv: Optional[List[str]]) -> Tuple[List[str], List[str]]:
        """(identity, scoring arguments) of the job's command or of `argv`; MUTABLE_FLAGS are in neither."""
        kept, scoring, skip_into = [], [], None
        for a in self.argv if argv is None else argv:
            if skip_into is not None:
                skip_into.append(a)
                skip_into = None
            elif flag_of(a) in MUTABLE_FLAGS or flag_of(a) in self.scoring_flags:
                into = scoring if flag_of(a) in self.scoring_flags else []
                into.append(a)
                skip_into = into if "=" not in a else None
            else:
                kept.append(a)
        return kept, scoring

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known and k != "run_dir"}, run_dir=Path(d["run_dir"]))


@dataclass
class Experiment:
    """One [[experiment]]: a framework, its tasks in the framework's own keys, and what its jobs add."""
    framework: str
    name: Optional[str] = None                               # the task's label (default: the task's name)
    args: List[str] = field(default_factory=list)            # the framework's arguments for every job
    executor_params: Dict = field(default_factory=dict)      # over the top-level ones
    own: Dict = field(default_factory=dict)                  # the target's keys: its tasks_key and extra_keys

    @classmethod
    def from_table(cls, table, number: int) -> "Experiment":
        """Check experiment `number` (from 1) as written; one SweepError names the first problem."""
        from .targets import load_target

        if not isinstance(table, dict) or "framework" not in table:
            raise SweepError(f"experiment {number} names no framework (framework = \"flare\", \"fairseq\", ...)")
        target = load_target(table["framework"])
        where = f"experiment {number} ({table['framework']})"
        common = {f.name for f in fields(cls)} - {"own"}
        allowed = common | ({target.tasks_key, *target.extra_keys} - {None})
        extra = sorted(set(table) - allowed)
        if extra:
            raise SweepError(f"{where}: unknown key(s) {', '.join(extra)}; known: {', '.join(sorted(allowed))}")
        return cls(framework=table["framework"], name=table.get("name"),
                   args=_str_list(table.get("args", []), f"args of experiment {number}"),
                   executor_params=resources.check(table.get("executor_params", {}),
                                                   f"executor_params of experiment {number}"),
                   own={k: v for k, v in table.items() if k not in common})

    def table(self) -> dict:
        """The experiment as a config file writes it (what its target reads its tasks from)."""
        return {"framework": self.framework, **({"name": self.name} if self.name is not None else {}),
                "args": list(self.args), "executor_params": dict(self.executor_params), **self.own}


@dataclass
class Grid:
    """A sweep config file's settings, one field per top-level key (docs/sweep.md)."""
    experiment: List[Experiment]
    executor: Executor = Executor.LOCAL
    executor_params: Dict = field(default_factory=dict)      # every job's; an experiment's own go over them
    max_parallel: Optional[int] = None                       # jobs at once (see jobs_at_once)
    seeds: List[int] = field(default_factory=lambda: [0])
    tickets: List[Ticket] = field(default_factory=lambda: [Ticket.WINNING, Ticket.RANDOM])  # shuffled: asked for
    rounds: Optional[int] = None                             # None: each framework's default
    lottery: List[str] = field(default_factory=list)         # lottery flags of every job
    # the most seconds a random ticket waits for a mask of its winning ticket (--lottery-mask-wait)
    wait_timeout_s: float = LotteryConfig.mask_wait
    ablations: Dict[str, List[str]] = field(default_factory=lambda: {"default": []})
    # SLURM: how many times a crashed rank or a lost node requeues each job (sweep/retries.py)
    retries: int = DEFAULT_RETRIES
    # SLURM: the most seconds a random ticket holds its allocation while it waits for a mask; then it gives its
    # nodes back and is requeued, held until the mask exists
    max_idle_s: float = MAX_IDLE_S
    # winning tickets of one task and seed share their dense round 0 where its settings match (sweep/dense.py)
    share_dense: bool = True
    # another sweep directory whose winning tickets' dense rounds this grid's reuse where they match
    dense_from: Optional[str] = None

    @classmethod
    def keys(cls) -> List[str]:
        return sorted(f.name for f in fields(cls))

    @classmethod
    def from_table(cls, data, path) -> "Grid":
        """Check a config file's table; one SweepError names the first problem."""
        if not isinstance(data, dict):
            raise SweepError(f"sweep config {path} must be a table of settings")
        _check_plain_values(data, path)
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise SweepError(f"sweep config {path}: unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(cls.keys())}")
        experiments = data.get("experiment")
        if not isinstance(experiments, list) or not experiments:
            raise SweepError(f"sweep config {path} has no [[experiment]] (framework and tasks or games to run)")
        grid = cls(**{key: _READ[key](value) for key, value in data.items()})
        if grid.dense_from is not None and not grid.share_dense:
            raise SweepError(f"dense_from = {grid.dense_from!r} reuses another sweep's dense rounds, which "
                             f"share_dense = false turns off: drop one of them")
        taking = [str(t) for t in grid.tickets if t.takes_masks]
        if taking and Ticket.WINNING not in grid.tickets:
            raise SweepError(f"{' and '.join(taking)} tickets take the winning tickets' masks: tickets = {taking} "
                             f"needs 'winning'")
        return grid

    def to_dict(self) -> dict:
        """Plain JSON values: what the sweep directory records."""
        return {f.name: getattr(self, f.name) for f in fields(self)} | {
            "executor": str(self.executor), "tickets": [str(t) for t in self.tickets],
            "experiment": [e.table() for e in self.experiment]}

    @property
    def jobs_at_once(self) -> Optional[int]:
        """max_parallel, or its default: LOCAL_MAX_PARALLEL on the local executor, no limit (None) on SLURM."""
        return self.max_parallel or (LOCAL_MAX_PARALLEL if self.executor is Executor.LOCAL else None)


@dataclass
class SweepConfig:
    """A checked config file and the jobs it expands into."""
    path: Path
    grid: Grid
    jobs: List[Job] = field(default_factory=list)

    def job(self, name: str) -> Job:
        return next(j for j in self.jobs if j.name == name)


def _executor(value) -> Executor:
    if value not in Executor.names():
        raise SweepError(f"unknown executor {value!r}; choose one of: {', '.join(Executor.names())}")
    return Executor(value)


def _max_parallel(value) -> int:
    if not isinstance(value, int) or value < 1:
        raise SweepError(f"max_parallel must be an integer >= 1, got {value!r}")
    return value


def _seeds(value) -> List[int]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in value) or len(set(value)) != len(value):
        raise SweepError(f"seeds must be a non-empty list of distinct integers, got {value!r}")
    return value


# a transferred ticket comes from another task's winning run, which a grid of one task cannot name
SWEEP_TICKETS = [t for t in TICKETS if t != Ticket.TRANSFERRED]


def _tickets(value) -> List[Ticket]:
    if not isinstance(value, list) or not value or any(t not in SWEEP_TICKETS for t in value):
        raise SweepError(f"tickets must be a non-empty list of {', '.join(SWEEP_TICKETS)}, got {value!r} (a "
                         f"transferred ticket: --lottery-transfer-from in a task's args)")
    return [Ticket(t) for t in value]


def _rounds(value) -> Optional[int]:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise SweepError(f"rounds must be an integer >= 1, got {value!r}")
    return value


def _wait_timeout_s(value) -> float:
    if not isinstance(value, (int, float)) or value <= 0:
        raise SweepError(f"wait_timeout_s must be a positive number, got {value!r}")
    return value


def _retries(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SweepError(f"retries must be an integer >= 0 (requeues after a crashed rank or a lost node), got "
                         f"{value!r}")
    return value


def _max_idle_s(value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise SweepError(f"max_idle_s must be a positive number of seconds, got {value!r}")
    return value


def _share_dense(value) -> bool:
    if not isinstance(value, bool):
        raise SweepError(f"share_dense must be true or false, got {value!r}")
    return value


def _dense_from(value) -> str:
    if not isinstance(value, str) or not value:
        raise SweepError(f"dense_from must be the path of another sweep directory, got {value!r}")
    return value


def _lottery(value) -> List[str]:
    args = _str_list(value, "lottery")
    _check_reserved(args, "lottery", GRID_FLAGS)
    return args


def _ablations(value) -> Dict[str, List[str]]:
    if not isinstance(value, dict) or not value:
        raise SweepError("ablations must be a table of name = [arguments]")
    ablations = {}
    for name, args in value.items():
        ablations[name] = _str_list(args, f"ablation {name!r}")
        _check_reserved(ablations[name], f"ablation {name!r}", GRID_FLAGS)
        if _label(name) != name:
            raise SweepError(f"ablation name {name!r} must be usable as a folder name (letters, digits, ._+-)")
    return ablations


# How each top-level key of a config file is checked and read (a SweepError names the problem).
_READ = {
    "experiment": lambda tables: [Experiment.from_table(t, i + 1) for i, t in enumerate(tables)],
    "executor": _executor,
    "executor_params": lambda params: resources.check(params, "executor_params"),
    "max_parallel": lambda value: None if value is None else _max_parallel(value),
    "seeds": _seeds,
    "tickets": _tickets,
    "rounds": _rounds,
    "lottery": _lottery,
    "wait_timeout_s": _wait_timeout_s,
    "ablations": _ablations,
    "retries": _retries,
    "max_idle_s": _max_idle_s,
    "share_dense": _share_dense,
    "dense_from": lambda value: None if value is None else _dense_from(value),
}


def read_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep config {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            return json.loads(text)
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        return tomllib.loads(text)
    except Exception as e:  # json.JSONDecodeError, tomllib.TOMLDecodeError
        raise SweepError(f"sweep config {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                         f"{e}") from None


def _str_list(value, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(x, (str, int, float)) for x in value):
        raise SweepError(f"{what} must be a list of command-line arguments (strings), got {value!r}")
    return [str(x) for x in value]


def _check_reserved(args: List[str], what: str, reserved, port_flag: Optional[str] = None) -> None:
    """Refuse arguments that set a flag the sweep sets itself (in any of the frameworks' spellings)."""
    reserved = {flag_of(f) for f in reserved}
    for a in args:
        if port_flag and flag_of(a) == flag_of(port_flag):
            raise SweepError(f"{what} sets {a.split('=', 1)[0]}, which the sweep sets: each job gets its own port "
                             f"(a winning ticket and its random ticket may run on one node at once)")
        if flag_of(a) in reserved:
            raise SweepError(f"{what} sets {a.split('=', 1)[0]}, which the sweep sets for every job "
                             f"(seeds, tickets, rounds and run directories come from the grid)")


def _label(text: str) -> str:
    """A task or ablation name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "_"


def _check_plain_values(value, path, where: str = "") -> None:
    """Only strings, numbers, booleans, lists and tables: TOML's dates and times (e.g. an unquoted
    time = 01:00:00) cannot be recorded or passed on."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain_values(v, path, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain_values(v, path, f"{where}[{i}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise SweepError(f"sweep config {path}: {where} = {value!r} is a {type(value).__name__}, not a string, "
                         f"number, boolean, list or table; quote it (e.g. time = \"01:00:00\")")


def load_config(path, sweep_dir) -> SweepConfig:
    """Read, check and expand a sweep config; raises SweepError with one message naming the problem."""
    from .targets import load_target

    grid = Grid.from_table(read_file(path), path)
    cfg = SweepConfig(Path(path), grid)
    sweep_dir = Path(sweep_dir).resolve()
    labels: Dict[str, int] = {}
    for i, exp in enumerate(grid.experiment):
        where = f"experiment {i + 1} ({exp.framework})"
        target = load_target(exp.framework)
        reserved = (*GRID_FLAGS, *target.reserved_flags)
        _check_reserved(exp.args, f"args of experiment {i + 1}", reserved, target.port_flag)
        for what, args in [("lottery", grid.lottery), *((f"ablation {a!r}", v) for a, v in grid.ablations.items())]:
            _check_reserved(args, f"{what} (for {where})", target.reserved_flags, target.port_flag)
        params = {**grid.executor_params, **exp.executor_params}
        args = list(exp.args)
        if grid.executor is Executor.SLURM:
            resources.check_slurm_time_limit(params, where)
            args += _world_size_args(target, params, exp.args, where)
        tasks = target.tasks(exp.table())
        if not tasks:
            raise SweepError(f"{where} has no tasks: list at least one in {target.tasks_key or 'its settings'}")
        for task, task_args in tasks:
            label = _label((exp.name if len(tasks) == 1 else f"{exp.name}-{task}") if exp.name else task)
            if label in labels:
                raise SweepError(f"task {label!r} appears twice (experiments {labels[label]} and {i + 1}); "
                                 f"give one of them a name")
            labels[label] = i + 1
            for ablation, ab_args in grid.ablations.items():
                for seed in grid.seeds:
                    _add_jobs(cfg, target, exp.framework, label, task_args, args, ablation, ab_args, seed,
                              sweep_dir, params)
    return cfg


def _world_size_args(target, params, args, where) -> List[str]:
    """A multi-task SLURM job's ranks for a command that takes them by a flag: every task runs the command and the
    framework forms its group from SLURM's variables, but it must be told how many ranks there are."""
    flag_ = target.world_size_flag
    if flag_ is None:
        return []
    if any(flag_of(a) == flag_of(flag_) for a in args):
        raise SweepError(f"args of {where} set {flag_}, which the sweep sets from the job's resources (nodes x "
                         f"tasks_per_node); give nodes and tasks_per_node in executor_params instead")
    world = int(params.get("nodes", 1)) * int(params.get("tasks_per_node", 1))
    return [flag_, str(world)] if world > 1 else []


def _add_jobs(cfg, target, framework, label, task_args, args, ablation, ab_args, seed, sweep_dir, params) -> None:
    grid = cfg.grid
    base = sweep_dir / "runs" / label / ablation / f"s{seed}"
    common = ([] if grid.rounds is None else [flag("rounds"), str(grid.rounds)]) \
        + list(grid.lottery) + list(ab_args) + [flag("seed"), str(seed)]
    wt_name = f"{label}/{ablation}/s{seed}/{Ticket.WINNING.short}"
    for ticket in grid.tickets:
        run_dir = base / ticket.short
        lottery = list(common)
        if ticket.takes_masks:
            lottery += [flag("ticket"), str(ticket), flag("masks_from"), str(base / Ticket.WINNING.short),
                        flag("mask_wait"), f"{grid.wait_timeout_s:g}"]
        name = f"{label}/{ablation}/s{seed}/{ticket.short}"
        try:
            argv = target.command(list(task_args), list(args), seed, str(run_dir), lottery)
        except SweepError as e:
            raise SweepError(f"job {name}: {e}") from None
        cfg.jobs.append(Job(name=name, framework=framework,
                            task=label, ablation=ablation, seed=seed, ticket=str(ticket), run_dir=run_dir, argv=argv,
                            winning=wt_name if ticket.takes_masks else None, resources=dict(params),
                            port_flag=target.port_flag, scoring_flags=list(target.scoring_flags),
                            dense_flag=None if ticket.takes_masks else _spelling(target, DENSE_FLAG),
                            checkpoints=[*target.checkpoints, framework_checkpoints(framework)]))


def _spelling(target, lottery_flag: str) -> str:
    """How the target's command spells a lottery flag the sweep adds (ELF: `--lottery_dense_from`): its
    `arguments` spell the lottery flags they are given."""
    return next(a for a in target.arguments([], [], 0, "", [lottery_flag]) if flag_of(a) == lottery_flag)


def framework_checkpoints(framework: str) -> str:
    """The glob, inside a run directory, of a framework's own files of each round (the run store's layout)."""
    from ..store import RunStore

    root = Path("RUN_DIR")
    return str((RunStore.view(root).framework_dir(framework, 0).relative_to(root)).parent / "round_*" / "*")
