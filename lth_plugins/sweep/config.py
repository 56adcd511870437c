"""The sweep config file (TOML or JSON) and the jobs it expands into (the keys: README, "Grids: lth sweep").

Every (task, ablation, seed) gets a winning-ticket job and, pipelined behind it, a random-ticket job with its
masks. A job is the framework's own resumable command, with its run directory in
SWEEP_DIR/runs/<task>/<ablation>/s<seed>/{wt,rt}. A job's identity is its command without the settings that
may change (rounds, the mask wait); its resources and port are not part of it.
"""
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import SweepError
from ..hparams import TICKETS, Ticket
from . import resources

EXECUTORS = ("local", "slurm")
TOP_KEYS = {"executor", "executor_params", "max_parallel", "seeds", "tickets", "rounds", "lottery",
            "wait_timeout_s", "ablations", "experiment"}
# Flags the sweep sets whose value may change between invocations (the run store lets rounds grow; the mask wait
# changes nothing computed): not part of a job's identity.
MUTABLE_FLAGS = ("--lottery-rounds", "--lottery-mask-wait")
# Set by the sweep for every job: an ablation or `lottery` may not set them.
RESERVED_FLAGS = ("--lottery-ticket", "--lottery-masks-from", "--lottery-rounds", "--lottery-seed", "--seed",
                  "--run-dir", "--save-dir", "--lottery-run-dir", "--lottery-prune", "--lottery-mask-wait")


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
    port: Optional[int] = None       # this job's own port (the sweep directory assigns it)
    checkpoints: List[str] = field(default_factory=list)  # globs of the framework's resume points in run_dir

    @property
    def file_stem(self) -> str:
        return self.name.replace("/", "__")

    def command(self) -> List[str]:
        """The argv the job runs: its command with its own distributed port."""
        if self.port_flag and self.port is not None:
            return self.argv + [self.port_flag, str(self.port)]
        return list(self.argv)

    def identity(self) -> List[str]:
        """What the job computes: its command without the flags whose value may change (MUTABLE_FLAGS)."""
        out, skip = [], False
        for a in self.argv:
            flag = a.split("=", 1)[0].replace("_", "-")  # a framework may spell them --lottery_rounds
            if skip:
                skip = False
            elif flag in MUTABLE_FLAGS:
                skip = "=" not in a
            else:
                out.append(a)
        return out

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known and k != "run_dir"}, run_dir=Path(d["run_dir"]))


@dataclass
class SweepConfig:
    path: Path
    data: dict
    jobs: List[Job] = field(default_factory=list)

    @property
    def executor(self) -> str:
        return self.data["executor"]

    @property
    def executor_params(self) -> dict:
        """The top-level executor parameters (an experiment's own are merged into its jobs' `resources`)."""
        return dict(self.data.get("executor_params") or {})

    @property
    def max_parallel(self) -> Optional[int]:
        return self.data.get("max_parallel") or (2 if self.executor == "local" else None)

    @property
    def wait_timeout_s(self) -> float:
        return float(self.data.get("wait_timeout_s", 86400))

    def job(self, name: str) -> Job:
        return next(j for j in self.jobs if j.name == name)


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


def _check_reserved(args: List[str], what: str, port_flag: Optional[str] = None) -> None:
    for a in args:
        flag = a.split("=", 1)[0]
        if flag in RESERVED_FLAGS:
            raise SweepError(f"{what} sets {flag}, which the sweep sets for every job "
                             f"(seeds, tickets, rounds and run directories come from the grid)")
        if port_flag and flag == port_flag:
            raise SweepError(f"{what} sets {flag}, which the sweep sets: each job gets its own port (a winning "
                             f"ticket and its random ticket may run on one node at once)")


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

    data = read_file(path)
    if not isinstance(data, dict):
        raise SweepError(f"sweep config {path} must be a table of settings")
    _check_plain_values(data, path)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise SweepError(f"sweep config {path}: unknown setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(TOP_KEYS))}")
    data.setdefault("executor", "local")
    if data["executor"] not in EXECUTORS:
        raise SweepError(f"unknown executor {data['executor']!r}; choose one of: {', '.join(EXECUTORS)}")
    top_params = resources.check(data.get("executor_params", {}), "executor_params")
    mp = data.get("max_parallel")
    if mp is not None and (not isinstance(mp, int) or mp < 1):
        raise SweepError(f"max_parallel must be an integer >= 1, got {mp!r}")
    seeds = data.setdefault("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds) or len(set(seeds)) != len(seeds):
        raise SweepError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    tickets = data.setdefault("tickets", list(TICKETS))
    if not isinstance(tickets, list) or not tickets or any(t not in TICKETS for t in tickets):
        raise SweepError(f"tickets must be a non-empty list of {', '.join(TICKETS)}, got {tickets!r}")
    if Ticket.RANDOM in tickets and Ticket.WINNING not in tickets:
        raise SweepError("random tickets take the winning tickets' masks: tickets = ['random'] needs 'winning'")
    rounds = data.get("rounds")
    if rounds is not None and (not isinstance(rounds, int) or rounds < 1):
        raise SweepError(f"rounds must be an integer >= 1, got {rounds!r}")
    if not isinstance(data.get("wait_timeout_s", 1), (int, float)) or data.get("wait_timeout_s", 1) <= 0:
        raise SweepError(f"wait_timeout_s must be a positive number, got {data['wait_timeout_s']!r}")
    lottery = _str_list(data.setdefault("lottery", []), "lottery")
    _check_reserved(lottery, "lottery")
    ablations = data.setdefault("ablations", {"default": []})
    if not isinstance(ablations, dict) or not ablations:
        raise SweepError("ablations must be a table of name = [arguments]")
    for name, args in ablations.items():
        _check_reserved(_str_list(args, f"ablation {name!r}"), f"ablation {name!r}")
        if _label(name) != name:
            raise SweepError(f"ablation name {name!r} must be usable as a folder name (letters, digits, ._+-)")
    experiments = data.get("experiment")
    if not isinstance(experiments, list) or not experiments:
        raise SweepError(f"sweep config {path} has no [[experiment]] (framework and tasks or games to run)")

    cfg = SweepConfig(Path(path), data)
    sweep_dir = Path(sweep_dir).resolve()
    labels: Dict[str, int] = {}
    for i, exp in enumerate(experiments):
        if not isinstance(exp, dict) or "framework" not in exp:
            raise SweepError(f"experiment {i + 1} names no framework (framework = \"flare\", \"fairseq\", ...)")
        target = load_target(exp["framework"])
        allowed = {"framework", "name", "args", "executor_params", target.tasks_key, *target.extra_keys} - {None}
        extra = sorted(set(exp) - allowed)
        if extra:
            raise SweepError(f"experiment {i + 1} ({exp['framework']}): unknown key(s) {', '.join(extra)}; "
                             f"known: {', '.join(sorted(allowed))}")
        args = _str_list(exp.get("args", []), f"args of experiment {i + 1}")
        _check_reserved(args, f"args of experiment {i + 1}", target.port_flag)
        params = {**top_params, **resources.check(exp.get("executor_params", {}),
                                                  f"executor_params of experiment {i + 1}")}
        if data["executor"] == "slurm":
            resources.check_slurm_time_limit(params, f"experiment {i + 1} ({exp['framework']})")
        tasks = target.tasks(exp)
        if not tasks:
            raise SweepError(f"experiment {i + 1} ({exp['framework']}) has no tasks: list at least one in "
                             f"{target.tasks_key or 'its settings'}")
        for task, task_args in tasks:
            name = exp.get("name")
            label = _label((name if len(tasks) == 1 else f"{name}-{task}") if name else task)
            if label in labels:
                raise SweepError(f"task {label!r} appears twice (experiments {labels[label]} and {i + 1}); "
                                 f"give one of them a name")
            labels[label] = i + 1
            for ablation, ab_args in ablations.items():
                for seed in seeds:
                    _add_jobs(cfg, target, exp["framework"], label, task_args, args, ablation,
                              [str(a) for a in ab_args], seed, sweep_dir, params)
    return cfg


def _add_jobs(cfg, target, framework, label, task_args, args, ablation, ab_args, seed, sweep_dir, params) -> None:
    data = cfg.data
    base = sweep_dir / "runs" / label / ablation / f"s{seed}"
    common = ([] if data.get("rounds") is None else ["--lottery-rounds", str(data["rounds"])]) \
        + [str(a) for a in data["lottery"]] + ab_args + ["--lottery-seed", str(seed)]
    wt_name = f"{label}/{ablation}/s{seed}/{Ticket.WINNING.short}"
    for ticket in data["tickets"]:
        ticket = Ticket(ticket)
        run_dir = base / ticket.short
        lottery = list(common)
        if ticket is Ticket.RANDOM:
            lottery += ["--lottery-ticket", str(Ticket.RANDOM), "--lottery-masks-from", str(base / Ticket.WINNING.short),
                        "--lottery-mask-wait", f"{cfg.wait_timeout_s:g}"]
        argv = target.command(list(task_args), list(args), seed, str(run_dir), lottery)
        target.check(argv)
        cfg.jobs.append(Job(name=f"{label}/{ablation}/s{seed}/{ticket.short}", framework=framework,
                            task=label, ablation=ablation, seed=seed, ticket=str(ticket), run_dir=run_dir, argv=argv,
                            winning=wt_name if ticket is Ticket.RANDOM else None, resources=dict(params),
                            port_flag=target.port_flag,
                            checkpoints=[*target.checkpoints, framework_checkpoints(framework)]))


def framework_checkpoints(framework: str) -> str:
    """The glob, inside a run directory, of a framework's own files of each round (the run store's layout)."""
    from ..store import RunStore

    root = Path("RUN_DIR")
    return str((RunStore.view(root).framework_dir(framework, 0).relative_to(root)).parent / "round_*" / "*")
