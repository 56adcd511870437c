"""The sbatch recipe (examples/fairseq/transformer_wmt14_en_de.sbatch) at CPU scale under the real local SLURM
(fixture `slurm_cluster`): 2 srun tasks with gloo, the tiny model on generated data. Both ranks hold the same masks
every round; the random ticket's job of submit_wmt14_en_de.sh runs after the winning ticket's, on its masks;
SLURM's warning before the time limit (USR1: save, requeue) and a requeue mid-round (preemption, node loss) resume,
a killed task requeues the job within its retry budget and fails it past the budget, naming the rank, and
resubmitting resumes: the run ends bit-identical to an uninterrupted one."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ..slurm_cluster import FINAL_STATES
from .conftest import GEN_ARGS
from .helpers import BIN, ROOT, env, load_ckpt, load_mask, metrics

EXAMPLES = ROOT / "examples" / "fairseq"
RECIPE = EXAMPLES / "transformer_wmt14_en_de.sbatch"
ROUNDS = 1
FLAGS = ["--max-update", "16", "--warmup-updates", "30", "--lr", "0.005", "--save-interval-updates", "4",
         "--lottery-rounds", str(ROUNDS), "--lottery-late-reset", "4u", "--lottery-bleu-average-last", "2",
         "--no-progress-bar", "--log-interval", "50", GEN_ARGS]
# the recipe's resources, scaled down: one node, 2 tasks (ranks) of one CPU, no GPU
RESOURCES = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=15"]
JOB_TIMEOUT_S = 600


def job_env(**extra):
    e = env()
    e["PATH"] = f"{BIN}{os.pathsep}{e['PATH']}"
    e.update(extra)
    return e


def sbatch(args, **extra_env) -> str:
    p = subprocess.run(["sbatch", "--parsable", *args], cwd=ROOT, env=job_env(**extra_env), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split(";")[0]


def submit(tmp: Path, data, runs: Path, env="") -> str:
    """One winning ticket of the recipe; its log is tmp/job-JOBID.out (every attempt appends to it)."""
    return sbatch([*RESOURCES, f"--chdir={tmp}", f"--output={tmp}/job-%j.out",
                   f"--export=ALL,MODEL=tiny,DATA={data},RUNS={runs}{env}", str(RECIPE), *FLAGS])


def kill_rank(job: str, rank: int) -> None:
    """SIGKILL one task's training process (a CUDA, NCCL or OOM crash stand-in; its node stays up). listpids reads
    the steps of the node it names, which need not be this host (slurm_local.sh --nodes N)."""
    node = subprocess.run(["squeue", "-h", "-j", job, "-o", "%N"], capture_output=True, text=True).stdout.strip()
    pids = subprocess.run(["scontrol", "listpids", job, node], capture_output=True, text=True).stdout.splitlines()
    # PID JOBID STEPID LOCALID GLOBALID: the task's processes in the job's srun step
    task = sorted(int(line.split()[0]) for line in pids[1:] if line.split()[2].isdigit()
                  and line.split()[4] == str(rank))
    assert task, pids
    os.kill(task[0], signal.SIGKILL)


def log(tmp: Path, job: str) -> str:
    path = tmp / f"job-{job}.out"
    return path.read_text() if path.is_file() else ""


def finished(cluster, tmp, job, expected="COMPLETED", timeout=JOB_TIMEOUT_S) -> None:
    state = cluster.wait_job(job, timeout=timeout)
    assert state == expected, f"job {job}: {state}\n{log(tmp, job)[-6000:]}"


def save_dir(runs: Path, ticket="winning") -> Path:
    return runs / f"lth_wmt14_all_{ticket}"


def checksums(out: str):
    """{rank: {round: checksum}} from the per-rank lines "[lottery] round k mask checksum ... (rank r of 2 ..."."""
    found = {}
    for k, s, r in re.findall(r"\[lottery\] round (\d+) mask checksum ([0-9a-f]+) \(rank (\d+) of 2", out):
        found.setdefault(int(r), {})[int(k)] = s
    return found


def resumed_at(out: str, k: int) -> int:
    """The update round k was last resumed from (fairseq's "Loaded checkpoint" line; rank 0 logs it)."""
    found = re.findall(rf"Loaded checkpoint \S+round_{k:02d}/checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)",
                       out)
    assert found, out[-6000:]
    return int(found[-1])


def requeues(job: str) -> int:
    p = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "State"], capture_output=True, text=True)
    return sum(1 for s in p.stdout.split() if s == "REQUEUED")


def assert_same_run(runs: Path, base: Path) -> None:
    """The final weights, every round's mask and metrics (BLEU included) of `runs` equal those of `base`."""
    save, expected_save = save_dir(runs), save_dir(base)
    last = f"round_{ROUNDS:02d}/checkpoint_last.pt"
    got, expected = load_ckpt(save / last)["model"], load_ckpt(expected_save / last)["model"]
    assert got.keys() == expected.keys()
    for n in expected:
        assert torch.equal(got[n], expected[n]), n
    for k in range(ROUNDS + 1):
        m, e = metrics(save, k)["metrics"], metrics(expected_save, k)["metrics"]
        m.pop("generate_command"), e.pop("generate_command")  # names the run's own checkpoint
        assert m == e, k
    for k in range(1, ROUNDS + 2):  # the mask after the last round too
        assert load_mask(save, k).checksum() == load_mask(expected_save, k).checksum()


@pytest.fixture(scope="module")
def uninterrupted(slurm_cluster, mt_data, tmp_path_factory):
    """The winning ticket and its random ticket, submitted by submit_wmt14_en_de.sh, both run to the end."""
    tmp = tmp_path_factory.mktemp("slurm_recipe")
    runs = tmp / "runs"
    p = subprocess.run(["bash", str(EXAMPLES / "submit_wmt14_en_de.sh"), "all", *FLAGS], cwd=tmp,
                       env=job_env(NODES="1", GPUS_PER_NODE="0", TASKS_PER_NODE="2", CPUS_PER_TASK="1", TIME="15",
                                   MEM="0", MODEL="tiny", DATA=str(mt_data), RUNS=str(runs)),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    wt, rt = re.findall(r"job (\d+)", p.stdout)[0], re.findall(r"random ticket: +job (\d+)", p.stdout)[0]
    deps = subprocess.run(["scontrol", "show", "job", rt], capture_output=True, text=True).stdout
    logs = {job: tmp / f"lth-wmt14-{job}.out" for job in (wt, rt)}
    for job in (wt, rt):
        state = slurm_cluster.wait_job(job, timeout=JOB_TIMEOUT_S)
        assert state == "COMPLETED", f"job {job}: {state}\n{logs[job].read_text()[-6000:]}"
    return runs, logs[wt].read_text(), logs[rt].read_text(), wt, deps


def test_two_srun_tasks_hold_identical_masks_every_round(uninterrupted):
    runs, out, _, _, _ = uninterrupted
    sums = checksums(out)
    assert set(sums) == {0, 1} and set(sums[0]) == set(range(ROUNDS + 1)) and sums[0] == sums[1], sums
    save = save_dir(runs)
    for k in range(1, ROUNDS + 1):
        assert load_mask(save, k).checksum() == sums[0][k]
        assert metrics(save, k)["fraction_pruned"] > 0
    assert "2 ranks on 1 node(s), cpu" in out
    assert sum(line.startswith(f"0: [lottery translation winning] round 0/{ROUNDS} start")
               for line in out.splitlines()) == 1


def test_the_random_ticket_job_runs_after_the_winning_ticket_on_its_masks(uninterrupted):
    runs, wt_out, rt_out, wt, deps = uninterrupted
    assert f"Dependency=afterok:{wt}" in deps
    wt_sums, rt_sums = checksums(wt_out), checksums(rt_out)
    assert set(rt_sums[0]) == set(range(1, ROUNDS + 1)) and rt_sums[0] == rt_sums[1]
    for k in range(1, ROUNDS + 1):
        assert rt_sums[0][k] == wt_sums[0][k]
        assert metrics(save_dir(runs, "random"), k)["ticket"] == "random"


def wait_for(cond, cluster, tmp, job, what, timeout=JOB_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        state = cluster.job_state(job)
        assert state not in FINAL_STATES, f"job {job} ended ({state}) before {what}\n{log(tmp, job)[-6000:]}"
        assert time.monotonic() < deadline, f"job {job}: not after {timeout} s: {what}\n{log(tmp, job)[-4000:]}"
        time.sleep(0.1)


def test_a_warned_requeued_and_crashed_job_resumes_each_time_and_ends_bit_identical(slurm_cluster, mt_data, tmp_path,
                                                                                     uninterrupted):
    """One winning ticket with a retry budget of 1, interrupted four times. (1) In round 0, SLURM's warning before
    the time limit (USR1 to every process of the step, as sbatch --signal=USR1@180 sends it): the ranks save at one
    update, the job requeues itself and resumes from exactly that update. (2) In round 1, `scontrol requeue`
    (preemption, node loss): it resumes from the round's last checkpoint. (3) Rank 1's process is SIGKILLed: the
    step ends, the job requeues itself (retry 1 of 1) and resumes; its random ticket (afterok, as
    submit_wmt14_en_de.sh submits it) stays pending. (4) Rank 1 is killed again: the budget is spent, the job fails
    naming the rank and the budget. Resubmitted, the run ends as the uninterrupted one, bit for bit."""
    runs = tmp_path / "runs"
    save = save_dir(runs)
    job = submit(tmp_path, mt_data, runs, ",RETRIES=1")
    rt = sbatch([*RESOURCES, f"--chdir={tmp_path}", f"--output={tmp_path}/rt-%j.out",
                 f"--dependency=afterok:{job}", "--kill-on-invalid-dep=yes",
                 f"--export=ALL,MODEL=tiny,DATA={mt_data},RUNS={runs},TICKET=random", str(RECIPE), *FLAGS])

    wait_for(lambda: (save / "round_00" / "checkpoint_last.pt").is_file(), slurm_cluster, tmp_path, job,
             "round 0's first checkpoint")
    subprocess.run(["scancel", "--signal=USR1", job], check=True, timeout=30)
    wait_for(lambda: (save / "round_01" / "checkpoint_last.pt").is_file(), slurm_cluster, tmp_path, job,
             "round 1's first checkpoint")
    out = log(tmp_path, job)
    saved = re.search(r"\[lottery\] rank \d: round 0: checkpoint_last\.pt saved at update (\d+); SLURM job "
                      + job + r" requeued", out)
    assert saved, out[-6000:]
    n = int(saved.group(1))
    assert 0 < n < 16 and resumed_at(out, 0) == n  # nothing trained was lost

    def in_round_1(restart):
        text = log(tmp_path, job)
        return f"(restart {restart})" in text and re.search(
            r"round 1 mask checksum \S+ \(rank 1 of 2", text.split(f"(restart {restart})")[1])

    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    wait_for(lambda: in_round_1(2), slurm_cluster, tmp_path, job, "the third attempt in round 1")
    assert 4 < resumed_at(log(tmp_path, job), 1) < 16
    assert requeues(job) == 2

    kill_rank(job, 1)
    wait_for(lambda: in_round_1(3), slurm_cluster, tmp_path, job, "the fourth attempt (after the crash) in round 1")
    out = log(tmp_path, job)
    assert re.search(rf"\[lth\] SLURM job {job}: rank 1 on \S+: Killed; requeued \(retry 1 of 1\)", out), out[-4000:]
    assert requeues(job) == 3 and slurm_cluster.job_state(rt) == "PENDING"  # the random ticket still waits
    retried = json.loads((save / "slurm_retries.json").read_text())
    assert [(r["job"], r["attempt"]) for r in retried] == [(job, 2)], retried
    status = subprocess.run([str(BIN / "lth"), "status", str(save)], capture_output=True, text=True, env=job_env(),
                            timeout=120).stdout
    assert f"winning: SLURM retries 1 (last: job {job}, attempt 3: rank 1 on " in status, status

    kill_rank(job, 1)
    killed = time.monotonic()
    finished(slurm_cluster, tmp_path, job, expected="FAILED", timeout=60)
    assert time.monotonic() - killed < 60
    assert re.search(rf"\[lth\] SLURM job {job}: rank 1 on \S+: Killed; retry budget 1 spent", log(tmp_path, job)), \
        log(tmp_path, job)[-3000:]
    assert slurm_cluster.wait_job(rt, timeout=60) == "CANCELLED"  # its winning ticket failed for good
    assert not (save / f"round_{ROUNDS:02d}" / "metrics.json").exists()

    again = submit(tmp_path, mt_data, runs)
    finished(slurm_cluster, tmp_path, again)
    out = log(tmp_path, again)
    assert "round 0/1 start" not in out  # round 0 was done: the resubmitted job continues round 1
    assert 4 < resumed_at(out, 1) <= 16
    assert_same_run(runs, uninterrupted[0])


def test_a_sweep_of_two_node_fairseq_jobs_finishes_both_tickets(slurm_nodes, mt_data, tmp_path):
    """`lth sweep` with nodes = 2 for fairseq on the local multi-node SLURM: the sweep sets --distributed-world-size
    (nodes x tasks_per_node) and srun's --kill-on-bad-exit; both tickets train on two nodes with the same masks on
    both ranks, and finish."""
    from ..sweep_helpers import failed_job_logs, lth, write_config
    from .helpers import COMMON, MT_MODEL

    args = [a for a in COMMON if a not in ("--seed", "1")] + MT_MODEL + [
        "--max-update", "8", "--lottery-late-reset", "2u", "--distributed-backend", "gloo", "--ddp-backend",
        "legacy_ddp"]
    cfg = write_config(tmp_path / "sweep.json", {
        "executor": "slurm", "seeds": [0], "rounds": 1,
        "executor_params": {"timeout_min": 15, "nodes": 2, "tasks_per_node": 1, "cpus_per_task": 1},
        "experiment": [{"framework": "fairseq", "name": "mt", "data": str(mt_data), "args": args}]})
    sweep = tmp_path / "sw"
    proc = lth("sweep", cfg, sweep, "--poll", "1", timeout=JOB_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-4000:] + failed_job_logs(sweep)
    assert "finished: 2 of 2 jobs done" in proc.stdout, proc.stdout
    for ticket in ("wt", "rt"):
        stem = sweep / "logs" / f"mt__default__s0__{ticket}"
        rank0, rank1 = stem.with_suffix(".log").read_text(), stem.with_suffix(".rank1.log").read_text()
        assert "--distributed-world-size 2" in rank0, rank0[:2000]
        sums = [re.findall(r"round 1 mask checksum ([0-9a-f]+) \(rank (\d) of 2", text) for text in (rank0, rank1)]
        assert sums[0] and sums[1] and sums[0][-1][0] == sums[1][-1][0] and \
            {sums[0][-1][1], sums[1][-1][1]} == {"0", "1"}, sums
        hosts = {re.search(r"=== \S+ \S+ \S+ on (\S+),", text).group(1) for text in (rank0, rank1)}
        assert len(hosts) == 2, hosts  # one rank on each node
    script = next((sweep / "submitit").glob("*_submission.sh")).read_text()
    assert "--kill-on-bad-exit=1" in script and "#SBATCH --nodes=2" in script, script
