"""What a job asks of the executor, in one vocabulary for the local and the SLURM executor: submitit's AutoExecutor
names (timeout_min, nodes, tasks_per_node, cpus_per_task, gpus_per_node, mem_gb), `slurm_<name>` for any other
parameter of submitit's SlurmExecutor (slurm_partition, slurm_signal_delay_s, slurm_max_num_timeout...), and
`local_setup` / `local_visible_gpus` (the GPUs local jobs share; default: the machine's visible GPUs).
Also the local GPU pool: each local job gets its own GPUs.
"""
import os
from typing import Dict, Iterable, List, Optional, Sequence

from ..errors import SweepError
from ..scheduler import duration_s
from .vocabulary import Executor

LOCAL_TIMEOUT_MIN = 7 * 24 * 60  # the local executor's time limit when the config gives none
MAX_NUM_TIMEOUT = 1000  # time-limit requeues of one job; each attempt must make progress (jobs.STALLED_ATTEMPTS)
GENERIC = {"timeout_min": int, "nodes": int, "tasks_per_node": int, "cpus_per_task": int, "gpus_per_node": int,
           "mem_gb": (int, float), "stderr_to_stdout": bool}
LOCAL = {"local_setup": list, "local_visible_gpus": list}
# SlurmExecutor's constructor arguments (not sbatch parameters)
SLURM_CTOR = ("max_num_timeout",)
# Names of the executors' own vocabularies, and what to write instead
HINTS = {"time": "timeout_min (minutes)", "num_gpus": "gpus_per_node", "ntasks_per_node": "tasks_per_node",
         "mem": "mem_gb (or slurm_mem)", "visible_gpus": "local_visible_gpus", "setup": "local_setup or slurm_setup",
         "signal_delay_s": "slurm_signal_delay_s", "max_num_timeout": "slurm_max_num_timeout"}
SET_BY_SWEEP = ("name", "job_name", "slurm_job_name")


def slurm_names() -> List[str]:
    try:
        import submitit
    except ImportError:
        raise SweepError("lth sweep needs submitit: pip install 'lth-plugins[sweep]'") from None
    return sorted(set(submitit.SlurmExecutor._valid_parameters()) | set(SLURM_CTOR))


def known_names() -> List[str]:
    return sorted(GENERIC) + sorted(LOCAL) + [f"slurm_{n}" for n in slurm_names()]


def check(params, where: str) -> Dict:
    """Check a table of executor parameters; returns it as a dict. One SweepError names the first problem."""
    if not isinstance(params, dict):
        raise SweepError(f"{where} must be a table of executor parameters")
    slurm = set(slurm_names())
    for name, value in params.items():
        if name in SET_BY_SWEEP:
            raise SweepError(f"{where}: {name} is set by the sweep (each job is named lth-<task>__<ablation>__"
                             f"s<seed>__<ticket>)")
        if name in GENERIC:
            typ = GENERIC[name]
            if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
                raise SweepError(f"{where}: {name} = {value!r} must be {_type_name(typ)}")
            if typ is int and value < 0 or name == "timeout_min" and value < 1:
                raise SweepError(f"{where}: {name} = {value!r} is out of range")
        elif name in LOCAL:
            if not isinstance(value, list):
                raise SweepError(f"{where}: {name} = {value!r} must be a list")
        elif name.startswith("slurm_") and name[len("slurm_"):] in slurm:
            pass
        elif name in HINTS or name in slurm:
            hint = HINTS.get(name, f"slurm_{name}")
            raise SweepError(f"{where}: {name} is not in the sweep's vocabulary (the same names for the local and "
                             f"the SLURM executor: submitit's AutoExecutor names, slurm_<name> for SLURM's own); "
                             f"write {hint}")
        else:
            raise SweepError(f"{where}: unknown parameter {name}; known: {', '.join(known_names())}")
    return dict(params)


def _type_name(typ) -> str:
    return {int: "an integer", bool: "true or false"}.get(typ, "a number")


def time_limit(resources: Dict) -> Optional[str]:
    """The job's time limit as written, or None."""
    if "slurm_time" in resources:
        return f"slurm_time = {resources['slurm_time']!r}"
    if "timeout_min" in resources:
        return f"timeout_min = {resources['timeout_min']}"
    return None


def time_limit_min(resources: Dict, executor: str) -> float:
    """The time limit in minutes (SLURM's [days-]hours:minutes:seconds forms read as sbatch does)."""
    if executor == Executor.SLURM and "slurm_time" in resources:
        seconds = duration_s(resources["slurm_time"])
        if seconds is None:
            raise SweepError(f"slurm_time = {resources['slurm_time']!r} is not a SLURM time: minutes, \"M:S\", "
                             f"\"H:M:S\" or \"D-H[:M[:S]]\" (sbatch --time)")
        return seconds / 60
    return float(resources.get("timeout_min", LOCAL_TIMEOUT_MIN if executor == Executor.LOCAL else 0))


def check_slurm_time_limit(resources: Dict, where: str) -> None:
    """Refuse a SLURM job without a time limit, or with one no longer than the warning submitit asks SLURM to send
    before it (slurm_signal_delay_s): every attempt would be warned at SLURM's first check and requeued without a
    round done."""
    if time_limit(resources) is None:
        raise SweepError(f"{where} has no time limit for SLURM: give timeout_min (minutes) in [executor_params] or in "
                         f"the experiment's executor_params (a job outliving it is requeued and resumes from its last "
                         f"finished round or checkpoint)")
    limit_s = time_limit_min(resources, Executor.SLURM) * 60
    delay_s = resources.get("slurm_signal_delay_s", submitit_default("signal_delay_s"))
    if limit_s <= delay_s:
        raise SweepError(f"{where}: its time limit ({time_limit(resources)}: {limit_s:g} s) is not longer than the "
                         f"warning SLURM sends before it (slurm_signal_delay_s = {delay_s} s), so each attempt would "
                         f"be requeued as soon as it starts: raise the time limit or lower slurm_signal_delay_s")


def submitit_default(name: str):
    """submitit's default for one of its SLURM parameters."""
    import inspect

    from submitit.slurm.slurm import _make_sbatch_string
    return inspect.signature(_make_sbatch_string).parameters[name].default


def gpus_asked(resources: Dict) -> Optional[int]:
    """GPUs per node the job asks for; None when it does not say."""
    return resources.get("gpus_per_node")


def describe(resources: Dict, executor: str) -> str:
    """One line: the parameters a job is submitted with (with the defaults the sweep supplies)."""
    shown = dict(resources)
    if executor == Executor.LOCAL:
        shown.setdefault("timeout_min", LOCAL_TIMEOUT_MIN)
        shown.pop("local_visible_gpus", None)
    else:
        shown.setdefault("slurm_max_num_timeout", MAX_NUM_TIMEOUT)
    return " ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "-"


def submitit_params(resources: Dict, executor: str, gpus_managed: bool) -> Dict:
    """The parameters handed to submitit's AutoExecutor.update_parameters for one job (without its name)."""
    params = {k: v for k, v in resources.items() if k not in LOCAL or k == "local_setup"}
    params.pop("slurm_max_num_timeout", None)
    if executor == Executor.LOCAL:
        params.setdefault("timeout_min", LOCAL_TIMEOUT_MIN)
        if gpus_managed:  # the job sets CUDA_VISIBLE_DEVICES for its command itself (jobs.JobRun)
            params["gpus_per_node"] = 0
    else:
        # node loss and preemption requeue the job (the cluster may default to --no-requeue)
        extra = dict(params.get("slurm_additional_parameters") or {})
        extra.setdefault("requeue", True)
        params["slurm_additional_parameters"] = extra
        # a task that dies ends the step at once (its peers would otherwise wait in a collective); the job then
        # requeues itself within its retry budget (sweep/jobs.py)
        srun = list(params.get("slurm_srun_args") or [])
        if not any(a.startswith(("--kill-on-bad-exit", "-K")) for a in srun):
            srun.append("--kill-on-bad-exit=1")
        params["slurm_srun_args"] = srun
    return params


def max_num_timeout(resources: Dict) -> int:
    return int(resources.get("slurm_max_num_timeout", MAX_NUM_TIMEOUT))


# --- the local GPU pool ----------------------------------------------------------------------------------------
def machine_gpus() -> List[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and not g.strip().startswith("-")]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a torch without CUDA support
        return []


class GpuPool:
    """The local executor's GPUs, handed out so that no two running jobs share one."""

    def __init__(self, gpus: Sequence[str]):
        self.gpus = [str(g) for g in gpus]
        self.in_use: Dict[str, List[str]] = {}  # job name -> its GPUs

    def free(self) -> List[str]:
        used = {g for gs in self.in_use.values() for g in gs}
        return [g for g in self.gpus if g not in used]

    def take(self, job: str, n: int) -> Optional[List[str]]:
        """n free GPUs for `job` (None: not enough free now)."""
        free = self.free()
        if n > len(free):
            return None
        self.in_use[job] = free[:n]
        return free[:n]

    def keep_only(self, jobs: Iterable[str]) -> None:
        """Release the GPUs of every job not in `jobs` (the jobs still running)."""
        keep = set(jobs)
        for name in list(self.in_use):
            if name not in keep:
                del self.in_use[name]


def local_pool(resources_of_jobs: Iterable[Dict]) -> List[str]:
    """The GPUs local jobs share: `local_visible_gpus` where a job's parameters give it, else the machine's."""
    for r in resources_of_jobs:
        if "local_visible_gpus" in r:
            return [str(g) for g in r["local_visible_gpus"]]
    return machine_gpus()


def local_gpus(resources: Dict, pool: Sequence[str], job: str) -> int:
    """How many GPUs a local job gets: as many as it asks; 1 when it does not say and the machine has GPUs.
    Asking for more than the machine has is refused."""
    asked = gpus_asked(resources)
    if asked is None:
        return 1 if pool else 0
    if asked > len(pool):
        have = f"only {len(pool)} ({', '.join(pool)})" if pool else "none"
        raise SweepError(f"{job} asks for {asked} GPU(s) (gpus_per_node) but this machine has {have} visible to "
                         f"the sweep (CUDA_VISIBLE_DEVICES, or local_visible_gpus); ask for fewer, or "
                         f"gpus_per_node = 0 to run on the CPU")
    return asked
