"""The ranks of a distributed fairseq run: their number, the collectives the round loop needs (every rank
compares its masks, agrees on the rounds to train), a barrier without a timeout for the points where rank 0 works
alone (the round's evaluation), the collectives' timeout, the watchdog that stops them all when one dies, and the
process group of `srun` tasks: on CPUs (fairseq's own SLURM detection needs CUDA), on a task's one GPU, on a free
port."""
import contextlib
import functools
import os
import random
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import torch

from lth_plugins.errors import REFUSED, LotteryConfigError, LotteryError, refusal
from lth_plugins.peers import PeerWatchdog

STORE_PREFIX = "lth_plugins/fairseq"
REFUSAL_LABEL = "fairseq-train: lottery error"  # how a refused fairseq-train run begins its one line
INTERRUPTED_LINE = "fairseq-train: interrupted; the same command resumes the run"  # what Ctrl-C leaves
T = TypeVar("T")


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def rank() -> int:
    return torch.distributed.get_rank() if world_size() > 1 else 0


def default_store():
    """The key-value store of torch.distributed's default group (served by rank 0's process)."""
    from torch.distributed.distributed_c10d import _get_default_store

    return _get_default_store()


def gather_strings(s: Optional[str]) -> List[Optional[str]]:
    """`s` of every rank, in rank order."""
    if world_size() == 1:
        return [s]
    out = [None] * world_size()
    torch.distributed.all_gather_object(out, s)
    return out


def broadcast_object(obj):
    """Rank 0's `obj` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def refused_together(check: Callable[[], T]) -> T:
    """`check()` on every rank: a LotteryError on any rank ends every rank with REFUSED, and rank 0 alone prints
    the refusal (`refusal_lines`), so a refusal that every rank reaches is said once, not once per rank."""
    if world_size() == 1:
        return check()
    try:
        result, message = check(), None
    except LotteryError as e:
        result, message = None, str(e)
    messages = gather_strings(message)
    if not any(messages):
        return result
    if rank() == 0:
        for line in refusal_lines(messages):
            print(line, file=sys.stderr, flush=True)
    raise SystemExit(REFUSED)


def refusal_lines(messages: List[Optional[str]]) -> List[str]:
    """One line per distinct refusal of the ranks (`messages`, in rank order; None: that rank did not refuse),
    naming the ranks when not every rank gave it."""
    lines = []
    for text in dict.fromkeys(m for m in messages if m):
        ranks = [str(r) for r, m in enumerate(messages) if m == text]
        where = "" if len(ranks) == len(messages) else f" (rank{'s' * (len(ranks) > 1)} {', '.join(ranks)})"
        lines.append(f"{REFUSAL_LABEL}{where}: {text}")
    return lines


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def wait_for_all(name: str, poll_s: float = 1.0) -> None:
    """Every rank waits here until all have arrived, for as long as that takes: a collective barrier would fail
    after the process group's timeout (NCCL's default: 10 minutes) while rank 0 evaluates a round alone. The ranks
    count themselves in the process group's store; a rank that dies meanwhile is named by the peer watchdog.
    `name` must be new for each use within one process group."""
    if world_size() == 1:
        return
    store = default_store()
    key = f"{STORE_PREFIX}/arrived/{name}"
    store.add(key, 1)
    delay = 0.01
    while store.add(key, 0) < world_size():
        time.sleep(delay)
        delay = min(poll_s, delay * 2)


def set_collective_timeout(seconds: Optional[float]) -> None:
    """Bound every collective of the run (torch's default group and fairseq's global group, which carries
    fairseq's all-reduces) by `seconds`; None keeps torch's defaults (NCCL 10 minutes, gloo 30 minutes)."""
    if seconds is None or world_size() == 1:
        return
    from torch.distributed import distributed_c10d

    if not hasattr(distributed_c10d, "_set_pg_timeout"):
        raise LotteryConfigError(f"--lottery-collective-timeout needs torch >= 2.3 (this is {torch.__version__})")
    from fairseq.distributed import utils as distributed_utils

    timeout = timedelta(seconds=seconds)
    for group in (distributed_c10d._get_default_group(), distributed_utils.get_global_group()):
        distributed_c10d._set_pg_timeout(timeout, group)


@contextlib.contextmanager
def watched_peers():
    """A rank that dies makes the others stop (naming it) instead of hanging in a collective; a rank that
    finishes waits for the others before it leaves (rank 0 hosts the store they still watch)."""
    # LTH_PEER_TIMEOUT_S: seconds without a heartbeat after which a rank is taken for dead
    watchdog = PeerWatchdog.for_default_group(timeout=float(os.environ.get("LTH_PEER_TIMEOUT_S", 30)))
    if watchdog is None:
        yield
        return
    finished = False
    try:
        yield
        finished = True
    except LotteryError:  # the same clear error on every rank: no peer to blame
        raise
    except Exception:  # e.g. gloo's "connection closed by peer": which peer?
        watchdog.wait_for_verdict()
        raise
    finally:
        watchdog.stop(finished=finished)
        if finished:
            barrier()


# --- srun tasks ---------------------------------------------------------------------------------------------
PORT_TRIES = 20  # ports tried from the one fairseq chose when it is taken
PORT_WAIT_S = 600.0  # how long a rank waits for rank 0 to publish its port


def install_slurm_init(rendezvous_dir: Optional[str] = None) -> None:
    """Wrap fairseq's `infer_init_method` (which `call_main` looks up at call time) for `srun` tasks (one rank per
    task): without CUDA the group is formed from SLURM's own variables (`cpu_slurm_init`; fairseq's detection calls
    torch.cuda.set_device); with CUDA by fairseq's detection, on device 0 where SLURM shows a task one GPU
    (`task_device`). Under both, a port taken on rank 0's host is not fatal (`agree_on_port`, through
    `rendezvous_dir`, which every node must see). Everywhere else, fairseq's own detection unchanged."""
    from fairseq.distributed import utils as distributed_utils

    original = distributed_utils.infer_init_method
    if getattr(original, "lottery_slurm", False):
        return

    @functools.wraps(original)
    def infer_init_method(cfg, force_distributed=False):
        if not _is_slurm_step(cfg):
            return original(cfg, force_distributed=force_distributed)
        try:
            if torch.cuda.is_available():
                with _local_id(task_device(int(os.environ.get("SLURM_LOCALID", 0)), torch.cuda.device_count(),
                                           cfg.pipeline_model_parallel)):
                    original(cfg, force_distributed=force_distributed)
            else:
                cpu_slurm_init(cfg)
            if rendezvous_dir and str(cfg.distributed_init_method or "").startswith("tcp://"):
                agree_on_port(cfg, rendezvous_dir)
        except LotteryError as e:
            raise refusal(REFUSAL_LABEL, e) from None

    infer_init_method.lottery_slurm = True
    distributed_utils.infer_init_method = infer_init_method


def _is_slurm_step(cfg) -> bool:
    env = os.environ
    in_slurm_task = all(k in env for k in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_JOB_NODELIST"))
    torchrun = all(k in env for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK"))
    return (cfg.distributed_init_method is None and cfg.distributed_world_size > 1 and not cfg.tpu
            and in_slurm_task and not torchrun and (torch.cuda.is_available() or not cfg.pipeline_model_parallel))


def task_device(local_id: int, visible: int, pipeline: bool = False) -> int:
    """The CUDA device of the task SLURM numbered `local_id` on its node, which sees `visible` GPUs. fairseq takes
    device SLURM_LOCALID, which holds where each task sees every GPU of its node; a task bound to one GPU
    (`--gpus-per-task=1`, `--gpu-bind=single:1`: CUDA_VISIBLE_DEVICES names one) sees it as device 0."""
    if local_id < visible or pipeline:
        return local_id
    if visible == 1:
        return 0
    raise LotteryConfigError(
        f"SLURM task {local_id} of its node sees {visible} GPUs (CUDA_VISIBLE_DEVICES="
        f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')}): fairseq trains one rank per task on device SLURM_LOCALID, "
        f"so each task must see every GPU of its node or exactly one (srun --gpus-per-task=1)")


@contextlib.contextmanager
def _local_id(device: int):
    """SLURM_LOCALID as fairseq's SLURM detection should read it for its device."""
    old = os.environ.get("SLURM_LOCALID")
    os.environ["SLURM_LOCALID"] = str(device)
    try:
        yield
    finally:
        if old is None:
            del os.environ["SLURM_LOCALID"]
        else:
            os.environ["SLURM_LOCALID"] = old


def slurm_port(cfg) -> int:
    """--distributed-port, or the port fairseq itself derives from the job id when it is not given."""
    if cfg.distributed_port > 0:
        return cfg.distributed_port
    job = os.environ["SLURM_JOB_ID"] + os.environ.get("SLURM_ARRAY_TASK_ID", "")
    return random.Random(int(job)).randint(10000, 60000)


def cpu_slurm_init(cfg) -> None:
    """One rank per SLURM task (`srun`, any number of nodes): tcp:// on the step's first node, rank
    SLURM_PROCID, no spawning; the backend must be gloo."""
    env = os.environ
    tasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 0)
    if tasks != cfg.distributed_world_size:
        raise LotteryConfigError(
            f"--distributed-world-size {cfg.distributed_world_size}, but SLURM started {tasks} task(s) in this "
            f"step: without GPUs every task is one rank (give --distributed-world-size {tasks}, or srun -n "
            f"{cfg.distributed_world_size})")
    if cfg.distributed_backend == "nccl":
        raise LotteryConfigError("--distributed-backend nccl needs GPUs and this machine has none: add "
                                 "--distributed-backend gloo")
    nodes = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
    try:
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as e:
        raise LotteryConfigError(f"`scontrol show hostnames {nodes}` failed ({e}): it names the host of rank 0")
    if not hosts:
        raise LotteryConfigError(f"`scontrol show hostnames {nodes}` named no host: it names the host of rank 0")
    cfg.distributed_init_method = f"tcp://{hosts[0]}:{slurm_port(cfg)}"
    cfg.distributed_rank = int(env["SLURM_PROCID"])
    cfg.distributed_no_spawn = True
    cfg.device_id = 0


def port_free(port: int) -> bool:
    """Whether this host lets a server listen on `port` (as torch's TCPStore does, address reuse on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def agree_on_port(cfg, rendezvous_dir) -> None:
    """The port of the group's tcp:// address, agreed by every rank of this job step: rank 0 takes the first of
    PORT_TRIES ports from the one chosen that is free on its host, saying so when it is not that one, and writes it
    to a file of `rendezvous_dir` named after the job, its attempt and step; the other ranks read it there. The
    file is a temporary one (.tmp: no result of the run), replaced by the next attempt's."""
    from lth_plugins.atomic import atomic_write_bytes
    from lth_plugins.scheduler import current_attempt, current_job

    host, port = cfg.distributed_init_method[len("tcp://"):].rsplit(":", 1)
    step = os.environ.get("SLURM_STEP_ID", "batch")
    path = Path(rendezvous_dir) / f".distributed_port.{current_job()}.{current_attempt()}.{step}.tmp"
    if cfg.distributed_rank == 0:
        chosen = next((p for p in range(int(port), int(port) + PORT_TRIES) if port_free(p)), None)
        if chosen is None:
            raise LotteryConfigError(f"ports {port} to {int(port) + PORT_TRIES - 1} are all taken on {host}: give "
                                     f"--distributed-port another port")
        if chosen != int(port):
            print(f"[lottery] port {port} is taken on {host}: the ranks meet on port {chosen}", file=sys.stderr,
                  flush=True)
        for old in Path(rendezvous_dir).glob(".distributed_port.*.tmp"):  # earlier attempts' and steps'
            old.unlink(missing_ok=True)
        atomic_write_bytes(path, str(chosen).encode())
    else:
        deadline = time.monotonic() + PORT_WAIT_S
        while not path.is_file():
            if time.monotonic() > deadline:
                raise LotteryConfigError(f"rank 0 did not publish its port in {path} within {PORT_WAIT_S:g} s: "
                                         f"--save-dir must be on a filesystem every node sees")
            time.sleep(0.2)
        chosen = int(path.read_text())
    cfg.distributed_init_method = f"tcp://{host}:{chosen}"
