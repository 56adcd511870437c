"""`lth sweep` against the real local SLURM (scripts/slurm_local.sh, fixture `slurm_cluster`) on the core's
teacher-MLP (framework "torch": deterministic, resumable per round): jobs outliving their time limit are requeued
and resume, a job requeued mid-round (preemption, node loss) resumes, a cancelled winning ticket stops its random
ticket, a killed sweep re-attaches, a requeue loop without progress is stopped, each job gets its own port, SLURM
is asked about all jobs in one sacct call; on the multi-node cluster (fixture `slurm_nodes`), a crashed rank
requeues its job within the retry budget and fails it past the budget, and a random ticket gives its nodes back
while its winning ticket is held in the queue.

SLURM here signals a job at its time limit only on its 30-s check: with timeout_min = 1 and slurm_signal_delay_s = 15
an attempt gets its warning 15 to 45 s after it starts, then waits about 12 s to run again.
"""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lth_plugins.store import RunStore
from lth_plugins.sweep.accounting import Accounting
from lth_plugins.sweep.config import load_config

from . import sweep_helpers
from .sweep_helpers import failed_job_logs, lth

pytest.importorskip("submitit")

WT, RT = "teacher-mlp/default/s0/wt", "teacher-mlp/default/s0/rt"
# 1200 updates a round, about 4 s here: an attempt of 15 s or more finishes at least one
ROUND_ARGS = ["--epochs", "6", "--n-train", "25600", "--lottery-late-reset", "2u"]


def grid(path: Path, **over) -> Path:
    cfg = {"executor": "slurm", "seeds": [0], "rounds": 2,
           "experiment": [{"framework": "torch", "args": ROUND_ARGS}],
           "executor_params": {"timeout_min": 10, "cpus_per_task": 1}}
    cfg.update(over)
    return sweep_helpers.write_config(path, cfg)


def state(sweep: Path, job: str) -> dict:
    try:
        return json.loads((sweep / "jobs" / f"{job.replace('/', '__')}.json").read_text())
    except (OSError, ValueError):
        return {}


def start_sweep(cfg: Path, sweep: Path, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([str(sweep_helpers.BIN / "lth"), "sweep", str(cfg), str(sweep), "--poll", "0.5"],
                            env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(cond, timeout: float, what: str, proc=None, log=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}:\n{log.read_text()[-4000:] if log else ''}")
        assert time.monotonic() < deadline, f"not after {timeout} s: {what}\n{log.read_text()[-4000:] if log else ''}"
        time.sleep(0.2)


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a sweep and its children, if still there."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def sacct_attempts(cluster, job_id) -> list:
    """Every attempt's state of a SLURM job once it has ended, oldest first (REQUEUED for each requeue). The sweep
    may end first: it ends when the runs are done, while the job's process is still exiting."""
    cluster.wait_job(job_id, timeout=120)
    return sacct_attempts_now(job_id)


def sacct_attempts_now(job_id) -> list:
    """Every attempt's state of a SLURM job in `sacct -D`, oldest first."""
    p = subprocess.run(["sacct", "-D", "-X", "-P", "-n", "-j", str(job_id), "-o", "State"], capture_output=True,
                       text=True, timeout=60, check=True)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def reference(cfg: Path, where: Path, names) -> list:
    """The same jobs' commands run on this machine without interruption (niced: the SLURM jobs come first)."""
    jobs = [j for j in load_config(cfg, where).jobs if j.name in names]
    for j in jobs:  # a random ticket started at once waits for a winning run's directory, but needs it to exist
        if j.ticket == "winning":
            j.run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return [subprocess.Popen(["nice", "-n", "10", *j.command()], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT) for j in jobs]


def assert_identical(run: Path, ref: Path) -> int:
    """Every round of `run` equals `ref`'s: metrics, the loss curve (bit for bit) and the mask. Returns the rounds."""
    a, b = RunStore.view(run), RunStore.view(ref)
    rounds = b.finished_rounds()
    assert rounds and a.finished_rounds() == rounds, (a.finished_rounds(), rounds)
    for k in rounds:
        ma, mb = a.read_round(k), b.read_round(k)
        assert (ma.metrics, ma.curve) == (mb.metrics, mb.curve), (run, k)
        if b.has_mask(k):
            assert a.mask_path(k).read_bytes() == b.mask_path(k).read_bytes(), (run, k)
    return len(rounds)


def test_time_limit_requeues_resume_a_killed_sweep_reattaches_and_results_match_an_uninterrupted_run(
        slurm_cluster, tmp_path):
    # the winning ticket trains 29 rounds of 1,400 updates: over a minute on a fast 2-core machine (CI ran 1,200
    # updates in 2 s), longer than any attempt before its warning (at most 45 s). Short rounds, because SLURM
    # checks time limits coarsely: attempts here ran 13-16 s, and a round must fit in one with the process's start
    cfg = grid(tmp_path / "grid.json", rounds=28,
               experiment=[{"framework": "torch", "args": ["--epochs", "7", *ROUND_ARGS[2:]]}],
               executor_params={"timeout_min": 1, "cpus_per_task": 1, "slurm_signal_delay_s": 15})
    sweep, log = tmp_path / "sw", tmp_path / "first.log"
    t0 = time.monotonic()
    first = start_sweep(cfg, sweep, log)
    ref = reference(cfg, tmp_path / "ref", (WT, RT))
    try:
        # the winning ticket needs several attempts: kill the sweep once it has been requeued (and the random
        # ticket submitted), then run the same command again
        wait_until(lambda: any(a.get("end", "").startswith("time limit")
                               for a in state(sweep, WT).get("attempts", [])) and state(sweep, RT).get("job_id"),
                   240, "the winning ticket's first requeue", first, log)
    finally:
        kill_group(first)
    ids = {j: state(sweep, j)["job_id"] for j in (WT, RT)}
    second = lth("sweep", cfg, sweep, "--poll", "0.5", timeout=600)
    took = time.monotonic() - t0
    assert second.returncode == 0, second.stdout[-4000:] + failed_job_logs(sweep)
    assert "submitted" not in second.stdout, second.stdout  # it followed the jobs already in SLURM
    assert {j: state(sweep, j)["job_id"] for j in (WT, RT)} == ids
    assert "finished: 2 of 2 jobs done" in second.stdout

    attempts = sacct_attempts(slurm_cluster, ids[WT])
    assert attempts[-1] == "COMPLETED" and attempts[:-1] and set(attempts[:-1]) == {"REQUEUED"}, attempts
    ends = [a["end"] for a in state(sweep, WT)["attempts"]]
    assert ends == ["time limit: requeued"] * (len(attempts) - 1) + ["finished"], ends
    status = lth("status", sweep, "--attempts").stdout
    wt_row = next(line for line in status.splitlines() if line.startswith(WT))
    assert f" {len(attempts) - 1} " in wt_row and f"SLURM {ids[WT]}: COMPLETED; before: REQUEUED" in wt_row, status

    for p in ref:
        assert p.wait(timeout=600) == 0
    rounds = [assert_identical(sweep / "runs/teacher-mlp/default/s0" / t, tmp_path / "ref/runs/teacher-mlp/default/s0"
                               / t) for t in ("wt", "rt")]
    assert rounds == [29, 28]
    # the figures: every attempt, how long the requeue took and the training redone (at most one round here)
    print(f"\nsweep of 2 jobs x 28 rounds, timeout_min = 1, slurm_signal_delay_s = 15: {took:.0f} s\n{status}")
    for a in state(sweep, WT)["attempts"][:-1]:
        assert a["progress"] and a["redone_s"] < 30, a


def test_a_job_requeued_mid_round_resumes_identical_and_jobs_at_once_get_their_own_ports(slurm_cluster, tmp_path):
    cfg = grid(tmp_path / "grid.json", tickets=["winning"], seeds=[0, 1],
               experiment=[{"framework": "torch", "args": ["--epochs", "24", "--n-train", "16384"]}])
    # 3,072 updates a round: 5 s or more on a fast 2-core machine, so the requeue lands mid-round
    sweep, log = tmp_path / "sw", tmp_path / "sweep.log"
    run0 = sweep / "runs/teacher-mlp/default/s0/wt"
    proc = start_sweep(cfg, sweep, log)
    ref = reference(cfg, tmp_path / "ref", (WT,))
    try:
        # preemption or node loss: SLURM requeues the job in the middle of its round 1
        wait_until(lambda: (run0 / "round_01/started.json").is_file(), 240, "round 1 of s0", proc, log)
        time.sleep(1)
        assert not (run0 / "round_01/metrics.json").is_file(), "round 1 finished before the requeue: make it longer"
        job_id = state(sweep, WT)["job_id"]
        subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
        proc.wait(timeout=400)
    finally:
        kill_group(proc)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:] + failed_job_logs(sweep)
    assert sacct_attempts(slurm_cluster, job_id) == ["REQUEUED", "COMPLETED"]
    ends = [a["end"] for a in state(sweep, WT)["attempts"]]
    assert ends == ["stopped by SIGTERM", "finished"], ends
    for p in ref:
        assert p.wait(timeout=600) == 0
    assert assert_identical(run0, tmp_path / "ref/runs/teacher-mlp/default/s0/wt") == 3

    # both seeds ran at the same time on the one node, each with its own port (MASTER_PORT; a command taking a
    # port flag gets it too)
    s0, s1 = state(sweep, WT), state(sweep, "teacher-mlp/default/s1/wt")
    assert s0["port"] != s1["port"] and s0["host"] == s1["host"]
    a0, a1 = s0["attempts"][0], s1["attempts"][0]
    assert a0["started"] < a1["ended"] and a1["started"] < a0["ended"], (a0, a1)
    for s in (s0, s1):
        assert f"port {s['port']})" in Path(s["log"]).read_text()


def test_a_cancelled_winning_ticket_stops_its_random_ticket_and_the_sweep_names_both(slurm_cluster, tmp_path):
    cfg = grid(tmp_path / "grid.json", rounds=4, wait_timeout_s=3600,
               experiment=[{"framework": "torch", "args": ["--epochs", "8", "--n-train", "16384"],
                            "executor_params": {"timeout_min": 9}}])
    sweep, log = tmp_path / "sw", tmp_path / "sweep.log"
    proc = start_sweep(cfg, sweep, log)
    try:
        wait_until(lambda: state(sweep, RT).get("state") == "running", 240, "the random ticket's start", proc, log)
        wt_id = state(sweep, WT)["job_id"]
        subprocess.run(["scancel", wt_id], check=True, timeout=60)
        proc.wait(timeout=240)
    finally:
        kill_group(proc)
    out = log.read_text()
    assert proc.returncode == 1, out
    assert f"FAILED {WT} (ended by SLURM: CANCELLED by 0, stopped by SIGTERM" in out, out
    assert f"{RT}: stopped, its winning ticket {WT} failed before the mask of round" in out, out
    assert f"FAILED {RT} (stopped: its winning ticket {WT} failed" in out, out
    assert sacct_attempts(slurm_cluster, state(sweep, RT)["job_id"])[-1] == "CANCELLED"
    status = lth("status", sweep).stdout
    assert f"SLURM {wt_id}: CANCELLED by 0" in status, status
    # the experiment's own executor_params over the top-level ones, in what was submitted
    script = (sweep / "submitit" / f"{wt_id}_submission.sh").read_text()
    assert "#SBATCH --time=9\n" in script and "#SBATCH --requeue\n" in script, script


def test_a_requeue_loop_without_progress_is_stopped_naming_the_time_limit(slurm_cluster, tmp_path):
    # one round needs minutes; every attempt gets under a minute
    cfg = grid(tmp_path / "grid.json", tickets=["winning"], rounds=1,
               experiment=[{"framework": "torch", "args": ["--epochs", "400", "--n-train", "20000"]}],
               executor_params={"timeout_min": 1, "cpus_per_task": 1, "slurm_signal_delay_s": 20})
    sweep = tmp_path / "sw"
    proc = lth("sweep", cfg, sweep, "--poll", "0.5", timeout=400)
    assert proc.returncode == 1, proc.stdout
    assert (f"FAILED {WT} (no progress in 2 attempts in a row: each reached the time limit (1 min) before "
            f"finishing a round or writing a checkpoint. Raise the time limit (timeout_min)") in proc.stdout
    assert sacct_attempts(slurm_cluster, state(sweep, WT)["job_id"]) == ["REQUEUED", "FAILED"]


def test_slurm_is_asked_about_all_jobs_in_one_sacct_call(slurm_cluster, tmp_path, monkeypatch):
    """Following 20 jobs for 5 polls: one sacct call with every job, not one per job per poll (which floods
    slurmdbd on a 128-GPU grid). The real sacct runs, through a wrapper that counts its calls."""
    calls = tmp_path / "calls.txt"
    wrapper = tmp_path / "bin" / "sacct"
    wrapper.parent.mkdir()
    real = subprocess.run(["which", "sacct"], capture_output=True, text=True, check=True).stdout.strip()
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    acct = Accounting(interval_s=60)
    ids = [str(990000 + i) for i in range(20)]
    for _ in range(5):
        assert acct.refresh(ids) == {}  # ids SLURM never had
    lines = calls.read_text().splitlines()
    assert len(lines) == 1 and all(i in lines[0].split("-j ")[1].split(",") for i in ids), lines


def test_a_crashed_rank_requeues_within_the_budget_and_past_it_fails_naming_rank_and_budget(slurm_nodes, tmp_path):
    """The training process of a running winning ticket is SIGKILLed (a CUDA or OOM crash stand-in: its node stays
    up). With the default budget the job requeues itself, resumes from its last finished round and finishes; its
    random ticket is not stopped. With `retries = 0` the job fails, naming the rank and the budget."""
    args = ["--epochs", "24", "--n-train", "16384"]  # 3,072 updates a round: the kill lands mid-round
    cfg = grid(tmp_path / "grid.json", rounds=2, experiment=[{"framework": "torch", "args": args}])
    cfg0 = grid(tmp_path / "grid0.json", rounds=2, retries=0, tickets=["winning"],
                experiment=[{"framework": "torch", "args": args}])
    sweep, sweep0 = tmp_path / "sw", tmp_path / "sw0"
    log, log0 = tmp_path / "sweep.log", tmp_path / "sweep0.log"
    run, run0 = sweep / "runs/teacher-mlp/default/s0/wt", sweep0 / "runs/teacher-mlp/default/s0/wt"
    procs = [start_sweep(cfg, sweep, log), start_sweep(cfg0, sweep0, log0)]
    round0 = {}
    try:
        for r, sw, lg, p in ((run, sweep, log, procs[0]), (run0, sweep0, log0, procs[1])):
            wait_until(lambda: (r / "round_01/started.json").is_file() and state(sw, WT).get("child_pid"), 300,
                       "round 1 of the winning ticket", p, lg)
            round0[r] = (r / "round_00/metrics.json").stat().st_mtime_ns
            os.kill(int(state(sw, WT)["child_pid"]), signal.SIGKILL)
        procs[1].wait(timeout=300)
        procs[0].wait(timeout=600)
    finally:
        for p in procs:
            kill_group(p)
    out, out0 = log.read_text(), log0.read_text()
    assert procs[0].returncode == 0, out[-4000:] + failed_job_logs(sweep)
    assert "finished: 2 of 2 jobs done" in out and f"{RT}: stopped" not in out, out
    wt_id = state(sweep, WT)["job_id"]
    assert sacct_attempts(slurm_nodes, wt_id) == ["REQUEUED", "COMPLETED"]
    assert "CANCELLED" not in sacct_attempts(slurm_nodes, state(sweep, RT)["job_id"])
    ends = [a["end"] for a in state(sweep, WT)["attempts"]]
    assert ends == ["killed by SIGKILL: requeued (retry)", "finished"], ends
    assert (run / "round_00/metrics.json").stat().st_mtime_ns == round0[run]  # resumed: round 0 not trained again
    retries = json.loads((run / "slurm_retries.json").read_text())
    assert len(retries) == 1 and retries[0]["job"] == wt_id and "rank 0 on lth-node" in retries[0]["what"], retries
    row = next(line for line in lth("status", sweep).stdout.splitlines() if line.startswith(WT))
    assert " 1/3 " in row, row

    assert procs[1].returncode == 1, out0[-4000:]
    assert re.search(rf"FAILED {WT} \(SLURM job \d+: rank 0 on lth-node\d: killed by SIGKILL; retry budget 0 spent",
                     out0), out0
    assert sacct_attempts(slurm_nodes, state(sweep0, WT)["job_id"]) == ["FAILED"]
    assert (run0 / "round_00/metrics.json").is_file() and not (run0 / "round_01/metrics.json").is_file()


def held_winning_ticket(folder: Path, cluster, idle_s: float) -> dict:
    """A sweep of one winning and one random ticket whose winning ticket is requeued and held in the queue
    (`scontrol requeuehold`) once it has written mask 1, then released once every node is idle. Returns the sweep's
    exit code and output, the jobs' ids, `idle_held_s` (from the random ticket's last finished round, where its
    wait for mask 2 began, until every node is idle) and `after_release_s` (from the release to the sweep's end).
    benchmarks/bench_slurm_nodes.py prints the same figures."""
    cfg = grid(folder / "grid.json", rounds=2, max_idle_s=idle_s,
               experiment=[{"framework": "torch", "args": ["--epochs", "24", "--n-train", "16384"]}])
    sweep, log = folder / "sw", folder / "sweep.log"
    wt_run, rt_run = (sweep / "runs/teacher-mlp/default/s0" / t for t in ("wt", "rt"))
    proc = start_sweep(cfg, sweep, log)
    try:
        wait_until(lambda: (wt_run / "round_01/mask.lthm").is_file(), 300, "the winning ticket's mask 1", proc, log)
        wt_id = state(sweep, WT)["job_id"]
        subprocess.run(["scontrol", "requeuehold", wt_id], check=True, timeout=60)
        wait_until(lambda: (rt_run / "round_01/metrics.json").is_file(), 300, "the random ticket's round 1", proc, log)
        waits_from = (rt_run / "round_01/metrics.json").stat().st_mtime
        wait_until(lambda: state(sweep, RT).get("held_for_mask") == 2, idle_s + 60, "the random ticket's release "
                   "of its nodes", proc, log)
        wait_until(lambda: set(cluster.node_states().values()) == {"idle"}, 60,
                   "every node idle while the winning ticket is held", proc, log)
        idle_held_s = time.time() - waits_from
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
        mask2_while_held = (wt_run / "round_02/mask.lthm").is_file()
        rt_id = state(sweep, RT)["job_id"]
        subprocess.run(["scontrol", "release", wt_id], check=True, timeout=60)
        released = time.time()
        proc.wait(timeout=600)
        after_release_s = time.time() - released
    finally:
        kill_group(proc)
    return {"rc": proc.returncode, "out": log.read_text(), "sweep": sweep, "wt_id": wt_id, "rt_id": rt_id,
            "queue": queue, "mask2_while_held": mask2_while_held, "idle_held_s": idle_held_s,
            "after_release_s": after_release_s}


def test_a_random_ticket_gives_its_nodes_back_while_its_winning_ticket_is_held(slurm_nodes, tmp_path):
    """The winning ticket is requeued and held in the queue once it has written mask 1. Its random ticket trains
    round 1, waits for mask 2, and after `max_idle_s` gives its nodes back (requeued held): every node is idle while
    the winning ticket is held. Released, the winning ticket writes mask 2, the sweep releases the random ticket, and
    both finish."""
    idle_s = 10
    r = held_winning_ticket(tmp_path, slurm_nodes, idle_s)
    out, sweep = r["out"], r["sweep"]
    assert r["rc"] == 0, out[-4000:] + failed_job_logs(sweep)
    assert not r["mask2_while_held"]
    assert f"{r['rt_id']} PENDING" in r["queue"] and f"{r['wt_id']} PENDING" in r["queue"], r["queue"]
    assert f"{RT}: released (job {r['rt_id']}): the mask of round 2 exists" in out, out
    assert "finished: 2 of 2 jobs done" in out, out
    assert "CANCELLED" not in sacct_attempts(slurm_nodes, r["rt_id"])
    ends = [a["end"] for a in state(sweep, RT)["attempts"]]
    assert ends[0] == f"waited {idle_s} s for mask 2: gave its nodes back, requeued held" and ends[-1] == "finished"
    # the figure: from the random ticket's last finished round to every node idle (bound: max_idle_s + polling)
    print(f"\nrandom ticket's allocation idle while its winning ticket was held: {r['idle_held_s']:.1f} s "
          f"(max_idle_s = {idle_s})")
    assert r["idle_held_s"] < idle_s + 40


def test_an_ablation_reusing_a_dense_round_is_submitted_to_slurm_once_that_round_has_finished(slurm_cluster,
                                                                                               tmp_path):
    """Two ablations of one seed on SLURM: the default trains the dense round 0, the one-shot ablation reuses it. The
    reusing job is submitted only after that round has finished (it never holds an allocation to wait), and its
    round 0 is the other run's."""
    args = ["--epochs", "1", "--n-train", "768", "--lottery-late-reset", "2u"]
    cfg = grid(tmp_path / "grid.json", rounds=1, tickets=["winning"], max_parallel=2,
               ablations={"default": [], "oneshot": ["--lottery-schedule", "oneshot"]},
               experiment=[{"framework": "torch", "args": args}])
    sweep = tmp_path / "sw"
    proc = lth("sweep", cfg, sweep, "--poll", "0.5", timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + failed_job_logs(sweep)
    assert "finished: 2 of 2 jobs done" in proc.stdout, proc.stdout
    trainer, reuser = "teacher-mlp/default/s0/wt", "teacher-mlp/oneshot/s0/wt"
    dense = sweep / "runs" / trainer / "round_00" / "metrics.json"
    assert RunStore.view(sweep / "runs" / reuser).read_round(0).dense_from is not None
    submitted = subprocess.run(["sacct", "-X", "-P", "-n", "-j", str(state(sweep, reuser)["job_id"]), "-o",
                                "Submit"], capture_output=True, text=True, timeout=60, check=True).stdout.split()[0]
    # SLURM's times are whole seconds
    assert time.mktime(time.strptime(submitted, "%Y-%m-%dT%H:%M:%S")) >= int(dense.stat().st_mtime), submitted


def test_a_job_preempted_with_a_grace_time_is_requeued_by_slurm_and_finishes(slurm_cluster, tmp_path):
    """A winning ticket on the partition `grace` (GraceTime 10 s) is preempted in round 1 by a job of `high`: SLURM
    signals its task at once and its batch script only at the grace's end. The task waits for SLURM's requeue
    instead of ending the job, which SLURM would then count as ended; the next attempt resumes and finishes."""
    cfg = grid(tmp_path / "grid.json", tickets=["winning"],
               experiment=[{"framework": "torch", "args": ["--epochs", "24", "--n-train", "16384"],
                            "executor_params": {"slurm_partition": "grace"}}])
    sweep, log = tmp_path / "sw", tmp_path / "sweep.log"
    run = sweep / "runs/teacher-mlp/default/s0/wt"
    proc = start_sweep(cfg, sweep, log)
    try:
        wait_until(lambda: (run / "round_01/started.json").is_file(), 240, "round 1", proc, log)
        job_id = state(sweep, WT)["job_id"]
        node = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%N"], capture_output=True, text=True,
                              timeout=60).stdout.strip()
        round0 = (run / "round_00/metrics.json").stat().st_mtime_ns
        subprocess.run(["sbatch", "--partition=high", f"--nodelist={node}", "--exclusive", "--time=2",
                        f"--output={tmp_path}/preemptor-%j.out", "--wrap", "sleep 2"], check=True, timeout=60,
                       capture_output=True)
        proc.wait(timeout=400)
    finally:
        kill_group(proc)
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:] + failed_job_logs(sweep)
    assert sacct_attempts(slurm_cluster, job_id) == ["PREEMPTED", "COMPLETED"]
    ends = [a["end"] for a in state(sweep, WT)["attempts"]]
    assert ends == ["stopped by SIGTERM", "finished"], ends
    assert (run / "round_00/metrics.json").stat().st_mtime_ns == round0  # resumed: round 0 not trained again
    assert not (run / "slurm_retries.json").exists()  # preemption is no retry
