"""`lth sweep` on the core's teacher-MLP (framework "torch") through submitit's local executor: bad input, a grid
killed and resumed, random tickets pipelined behind their winning ticket, a failing job, status and report."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lth_plugins.errors import SweepError
from lth_plugins.sweep.config import load_config
from lth_plugins.lock import pid_alive
from lth_plugins.sweep.state import SweepDir

from . import sweep_helpers
from .sweep_helpers import failed_job_logs, finished_rounds, lth, run_and_kill, submitted_while_winning_trains

pytest.importorskip("submitit")

TINY = ["--epochs", "1", "--n-train", "768", "--lottery-late-reset", "2u"]


def write_config(path: Path, **over) -> Path:
    cfg = {"seeds": [0, 1], "rounds": 2, "max_parallel": 2,
           "experiment": [{"framework": "torch", "args": TINY}]}
    cfg.update(over)
    return sweep_helpers.write_config(path, cfg)


@pytest.mark.parametrize("over, message", [
    ({"executor": "pbs"}, "unknown executor 'pbs'; choose one of: local, slurm"),
    ({"experiment": [{"framework": "jax"}]}, "unknown framework 'jax'"),
    ({"experiment": [{"framework": "torch", "tasks": ["imagenet"]}]}, "unknown task 'imagenet'"),
    ({"experiment": [{"framework": "flare", "games": ["Pong-v5"]}]}, "unknown game 'Pong-v5'"),
    ({"experiment": [{"framework": "torch", "games": ["x"]}]}, "unknown key(s) games"),
    ({"experiment": [{"framework": "torch", "tasks": []}]}, "experiment 1 (torch) has no tasks: list at least one"),
    ({"experiment": [{"framework": "torch", "args": ["--epochs", "zero"]}]}, "invalid int value: 'zero'"),
    ({"ablations": {"rt": ["--lottery-ticket", "random"]}}, "sets --lottery-ticket, which the sweep sets"),
    ({"seeds": [0, 0]}, "seeds must be a non-empty list of distinct integers"),
    ({"tickets": ["random"]}, "needs 'winning'"),
    ({"rounds": 0}, "rounds must be an integer >= 1"),
    ({"executor_params": {"no_such_param": 1}}, "executor_params: unknown parameter no_such_param; known: "),
    ({"executor_params": {"time": 60}}, "executor_params: time is not in the sweep's vocabulary (the same names for "
                                        "the local and the SLURM executor"),
    ({"experiment": [{"framework": "torch", "executor_params": {"partition": "gpu"}}]},
     "executor_params of experiment 1: partition is not in the sweep's vocabulary"),
    ({"executor": "slurm"}, "experiment 1 (torch) has no time limit for SLURM: give timeout_min (minutes)"),
    ({"executor": "slurm", "executor_params": {"timeout_min": 1}},
     "experiment 1 (torch): its time limit (timeout_min = 1: 60 s) is not longer than the warning SLURM sends "
     "before it (slurm_signal_delay_s = 90 s)"),
    ({"executor": "slurm", "executor_params": {"slurm_time": "0:30", "slurm_signal_delay_s": 30}},
     "its time limit (slurm_time = '0:30': 30 s) is not longer than the warning SLURM sends before it "
     "(slurm_signal_delay_s = 30 s)"),
    ({"executor": "slurm", "executor_params": {"slurm_time": "2-"}},
     "slurm_time = '2-' is not a SLURM time: minutes, \"M:S\", \"H:M:S\" or \"D-H[:M[:S]]\" (sbatch --time)"),
    # sbatch's "D-H" is days and hours (26 h), longer than any warning
    ({"executor": "slurm", "executor_params": {"slurm_time": "1-2", "slurm_signal_delay_s": 93601},
      "seeds": [0]}, "its time limit (slurm_time = '1-2': 93600 s) is not longer than the warning"),
])
def test_bad_config_is_refused_before_anything_is_written(tmp_path, over, message):
    cfg = write_config(tmp_path / "sweep.json", **over)
    proc = lth("sweep", cfg, tmp_path / "sw")
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stdout and proc.stdout.count("lth: error:") == 1, proc.stdout
    assert not (tmp_path / "sw").exists()


def test_toml_time_value_is_named_before_anything_is_written(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('seeds = [0]\n[[experiment]]\nframework = "torch"\n[executor_params]\ntimeout_min = 01:00:00\n')
    proc = lth("sweep", cfg, tmp_path / "sw")
    assert proc.returncode == 2, proc.stdout
    assert "executor_params.timeout_min = datetime.time(1, 0) is a time" in proc.stdout, proc.stdout
    assert not (tmp_path / "sw").exists()


def test_sweep_dir_of_another_config_or_with_other_files_is_refused(tmp_path):
    a = load_config(write_config(tmp_path / "a.json"), tmp_path / "sw")
    sd = SweepDir(tmp_path / "sw")
    sd.open(a)
    sd.close()
    # a grid none of whose jobs has a result (e.g. all failed on arguments the parser took) may be corrected
    b = load_config(write_config(tmp_path / "b.json", seeds=[0, 1, 2]), tmp_path / "sw")
    sd = SweepDir(tmp_path / "sw")
    sd.open(b)
    sd.close()
    assert len(sd.jobs()) == 6
    result = b.jobs[0].run_dir / "round_00" / "metrics.json"
    result.parent.mkdir(parents=True)
    result.write_text("{}")
    with pytest.raises(SweepError, match=r"holds a sweep whose jobs the config .*a.json changes: "
                                         r"teacher-mlp/default/s2/wt is not in the config"):
        SweepDir(tmp_path / "sw").open(a)
    # where and how it runs may change: executor settings are not part of the grid
    c = load_config(write_config(tmp_path / "c.json", seeds=[0, 1, 2], max_parallel=1,
                                 executor_params={"timeout_min": 5}), tmp_path / "sw")
    SweepDir(tmp_path / "sw").open(c)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SweepError, match="is not empty and not a sweep directory"):
        SweepDir(other).open(a)
    assert (other / "keep.txt").read_text() == "mine"


def test_jobs_of_the_grid(tmp_path):
    cfg = load_config(write_config(tmp_path / "s.json", ablations={"default": [], "oneshot": [
        "--lottery-schedule", "oneshot"]}), tmp_path / "sw")
    names = [j.name for j in cfg.jobs]
    assert len(names) == 8 and "teacher-mlp/oneshot/s1/rt" in names
    rt = cfg.job("teacher-mlp/oneshot/s1/rt")
    wt = cfg.job(rt.winning)
    assert wt.name == "teacher-mlp/oneshot/s1/wt" and "--lottery-schedule" in wt.argv
    i = rt.argv.index("--lottery-masks-from")
    assert rt.argv[i + 1] == str(wt.run_dir) and "--lottery-mask-wait" in rt.argv
    assert rt.argv[rt.argv.index("--seed") + 1] == "1" and rt.argv[rt.argv.index("--lottery-seed") + 1] == "1"


def test_killed_sweep_resumes_and_random_tickets_follow_the_winning_masks(tmp_path):
    cfg_path = write_config(tmp_path / "sweep.json", rounds=3, max_parallel=4,
                            experiment=[{"framework": "torch", "args": ["--epochs", "6", "--n-train", "6144",
                                                                        "--lottery-late-reset", "3u"]}])
    sweep = tmp_path / "sw"
    base = sweep / "runs/teacher-mlp/default"
    pairs = [(base / f"s{s}/wt", base / f"s{s}/rt") for s in (0, 1)]
    run_and_kill(cfg_path, sweep, pairs, lambda: (pairs[0][1] / "round_01/metrics.json").is_file(),
                 tmp_path / "first.log")
    # rounds last seconds so the sweep, starved of CPU by four trainings on two cores, still sees a winning
    # ticket between its first mask and its end; one pipelined seed shows the behaviour
    log = (sweep / "sweep.log").read_text()
    assert any(submitted_while_winning_trains(log, f"teacher-mlp/default/s{s}/wt", f"teacher-mlp/default/s{s}/rt")
               for s in (0, 1)), log
    before = finished_rounds(sweep)
    status = lth("status", sweep)
    assert status.returncode == 0 and "interrupted" in status.stdout, status.stdout

    second = lth("sweep", cfg_path, sweep, "--poll", "0.3")
    assert second.returncode == 0, second.stdout[-4000:] + failed_job_logs(sweep)
    assert "finished: 4 of 4 jobs done" in second.stdout
    for p, mtime in before.items():  # finished rounds are not recomputed
        assert p.stat().st_mtime_ns == mtime, p
    status = lth("status", sweep).stdout
    assert status.count(" done ") == 4 and "4 jobs: 4 done" in status, status
    status = lth("status", pairs[0][0], "--attempts")  # a run the sweep ran: its job's attempts
    assert status.returncode == 0, status.stdout
    rows = [line for line in status.stdout.splitlines() if line.startswith("teacher-mlp/")]
    assert rows and {r.split()[0] for r in rows} == {"teacher-mlp/default/s0/wt"}, status.stdout
    third = lth("sweep", cfg_path, sweep, "--poll", "0.3")  # nothing left to submit
    assert third.returncode == 0 and "submitted" not in third.stdout, third.stdout
    report = lth("report", sweep, "-o", tmp_path / "report")
    assert report.returncode == 0, report.stdout
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(data["tasks"][0]["runs"]) == 4


def test_failing_job_names_its_log_others_go_on_and_report_draws_the_rest(tmp_path):
    cfg_path = write_config(tmp_path / "sweep.json", seeds=[0],
                            ablations={"default": [], "broken": ["--lottery-late-reset", "9ep"]})
    sweep = tmp_path / "sw"
    proc = lth("sweep", cfg_path, sweep, "--poll", "0.3")
    assert proc.returncode == 1, proc.stdout
    log = sweep / "logs" / "teacher-mlp__broken__s0__wt.log"
    assert f"FAILED teacher-mlp/broken/s0/wt (exit code 2); log: {log}" in proc.stdout
    assert "late reset point 9ep lies beyond" in log.read_text()
    assert "not run teacher-mlp/broken/s0/rt: its winning ticket teacher-mlp/broken/s0/wt failed" in proc.stdout
    status = lth("status", sweep).stdout
    assert "failed" in status and str(log) in status and status.count(" done ") == 2, status
    report = lth("report", sweep, "-o", tmp_path / "report")
    assert report.returncode == 0, report.stdout
    assert "missing run teacher-mlp/broken/s0/wt: no round finished (failed)" in report.stdout
    assert len(json.loads((tmp_path / "report" / "report.json").read_text())["tasks"][0]["runs"]) == 2


def test_a_jobs_training_process_does_not_outlive_the_job(tmp_path):
    """submitit stops a job (timeout, cancel) by signalling its own process only; SIGKILL of that process must
    take the ticket's training process with it, or the orphan keeps the run's lock."""
    script = ("import sys; from lth_plugins.sweep.jobs import run_job; "
              "run_job('t', [sys.executable, '-c', 'import time; time.sleep(120)'], sys.argv[1], sys.argv[2], "
              "'local')")
    state = tmp_path / "state.json"
    job = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "job.log"), str(state)])
    deadline = time.time() + 60
    while not state.is_file() and time.time() < deadline:
        time.sleep(0.05)
    child = json.loads(state.read_text())["child_pid"]
    assert pid_alive(child)
    job.kill()
    job.wait()
    deadline = time.time() + 10
    while pid_alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "the training process outlived its killed job"


def test_random_ticket_waiting_for_a_failed_winning_ticket_is_stopped(tmp_path):
    """The winning ticket dies in round 1 (its training process is held from its first mask on, then killed): its
    random ticket, which would wait for mask 2 for an hour (wait_timeout_s), is stopped, and the sweep ends within
    minutes, naming why."""
    cfg_path = write_config(tmp_path / "sweep.json", seeds=[0], rounds=3, wait_timeout_s=3600,
                            experiment=[{"framework": "torch", "args": ["--epochs", "150", "--n-train", "768"]}])
    sweep = tmp_path / "sw"
    wt_state, rt_state = (sweep / "jobs" / f"teacher-mlp__default__s0__{t}.json" for t in ("wt", "rt"))
    wt_run = sweep / "runs/teacher-mlp/default/s0/wt"
    t0 = time.time()
    # started as from a script's `lth sweep ... &` or nohup: SIGINT ignored, in the sweep and in its jobs
    proc = subprocess.Popen([str(sweep_helpers.BIN / "lth"), "sweep", str(cfg_path), str(sweep), "--poll", "0.3"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        while not (wt_run / "round_01" / "mask.lthm").is_file():  # its random ticket may be submitted now
            assert proc.poll() is None and time.time() - t0 < 300, proc.stdout.read() if proc.poll() else ""
            time.sleep(0.02)
        wt_child = json.loads(wt_state.read_text())["child_pid"]
        os.kill(wt_child, signal.SIGSTOP)  # held in round 1 (150 epochs) until killed: mask 2 never comes
        assert not (wt_run / "round_02" / "mask.lthm").is_file(), "the winning ticket finished round 1 unseen"
        while not (rt_state.is_file() and json.loads(rt_state.read_text())["state"] == "running"):
            assert proc.poll() is None and time.time() - t0 < 300, proc.stdout.read() if proc.poll() else ""
            time.sleep(0.02)
        os.kill(wt_child, signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)  # the sweep's output ends when its last job has ended
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # nothing left behind, whatever happened
        proc.wait()
    assert proc.returncode == 1, out
    assert "FAILED teacher-mlp/default/s0/wt (exit code -9)" in out, out
    rt = "teacher-mlp/default/s0/rt"
    assert f"{rt}: stopped, its winning ticket teacher-mlp/default/s0/wt failed before the mask of round 2" in out
    assert f"FAILED {rt} (stopped: its winning ticket" in out, out


def test_vocabulary_errors_name_what_to_write_instead(tmp_path):
    for params, message in [({"time": 60}, "write timeout_min (minutes)"),
                            ({"partition": "gpu"}, "write slurm_partition"),
                            ({"ntasks_per_node": 2}, "write tasks_per_node"),
                            ({"name": "x"}, "name is set by the sweep"),
                            ({"gpus_per_node": "2"}, "gpus_per_node = '2' must be an integer")]:
        with pytest.raises(SweepError, match=re_escape(message)):
            load_config(write_config(tmp_path / "s.json", executor_params=params), tmp_path / "sw")


def re_escape(text):
    import re

    return re.escape(text)


def test_dry_run_prints_every_job_with_command_resources_and_run_dir_and_writes_nothing(tmp_path):
    cfg = write_config(tmp_path / "s.json", executor="slurm", seeds=[0],
                       executor_params={"timeout_min": 10, "cpus_per_task": 1, "slurm_partition": "main"},
                       experiment=[{"framework": "torch", "name": "small", "args": TINY,
                                    "executor_params": {"cpus_per_task": 4}},
                                   {"framework": "torch", "name": "long", "args": TINY,
                                    "executor_params": {"timeout_min": 600}}])
    sweep = tmp_path / "sw"
    summary = lth("sweep", "--dry-run", cfg, sweep)
    assert summary.returncode == 0 and not sweep.exists(), summary.stdout
    assert summary.stdout.splitlines()[:2] == [
        "4 jobs = 2 tasks (torch:small, torch:long) x 1 ablation (default) x 1 seed (0) x 2 tickets (winning, random)",
        f"executor slurm, at most 2 at once; sweep directory {sweep.resolve()} (dry run: nothing is submitted or "
        f"written)"], summary.stdout
    assert "resources: 2 jobs with cpus_per_task=4 " in summary.stdout and "run dir:" not in summary.stdout
    proc = lth("sweep", "--dry-run", "--verbose", cfg, sweep)
    assert proc.returncode == 0, proc.stdout
    assert not sweep.exists()
    out = proc.stdout
    assert out.startswith(summary.stdout.split("(--verbose")[0])
    blocks = {b.split(":")[0]: b for b in out.split("\n\n")[1:]}
    assert set(blocks) == {f"{t}/default/s0/{k}" for t in ("small", "long") for k in ("wt", "rt")}, out
    # each experiment's own executor_params over the top-level ones
    assert ("resources: cpus_per_task=4 slurm_max_num_timeout=1000 slurm_partition=main timeout_min=10"
            in blocks["small/default/s0/wt"])
    assert ("resources: cpus_per_task=1 slurm_max_num_timeout=1000 slurm_partition=main timeout_min=600"
            in blocks["long/default/s0/rt"])
    for name, block in blocks.items():
        run_dir = sweep.resolve() / "runs" / name.replace("/default/", "/default/")
        assert f"  run dir:   {run_dir}\n" in block, block
        assert f"--run-dir {run_dir} " in block and "lth_plugins.demo" in block
    ports = {b.split("port:")[1].split()[0] for b in blocks.values()}
    assert len(ports) == 4, out  # every job its own port
    assert "(submitted once small/default/s0/wt has written its first mask)" in blocks["small/default/s0/rt"]


def test_a_sweep_grows_by_seeds_ablations_and_rounds_but_keeps_its_jobs_settings(tmp_path):
    sweep = tmp_path / "sw"
    first = write_config(tmp_path / "a.json", seeds=[0], rounds=1, tickets=["winning"])
    proc = lth("sweep", first, sweep, "--poll", "0.3")
    assert proc.returncode == 0, proc.stdout + failed_job_logs(sweep)
    s0 = sweep / "runs/teacher-mlp/default/s0/wt"
    before = {p: p.stat().st_mtime_ns for p in s0.glob("round_*/metrics.json")}
    port = json.loads((sweep / "sweep.json").read_text())["jobs"][0]["port"]
    assert len(before) == 2

    grown = write_config(tmp_path / "b.json", seeds=[0, 1], rounds=2, tickets=["winning"], max_parallel=4,
                         ablations={"default": [], "oneshot": ["--lottery-schedule", "oneshot"]})
    dry = lth("sweep", "--dry-run", "--verbose", grown, sweep)
    assert dry.returncode == 0 and "teacher-mlp/default/s0/wt: pending, 2/3 rounds\n" in dry.stdout, dry.stdout
    proc = lth("sweep", grown, sweep, "--poll", "0.3")
    assert proc.returncode == 0, proc.stdout + failed_job_logs(sweep)
    assert "finished: 4 of 4 jobs done" in proc.stdout
    for p, mtime in before.items():  # the rounds it had are kept, round 2 is added
        assert p.stat().st_mtime_ns == mtime, p
    assert (s0 / "round_02/metrics.json").is_file()
    jobs = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert next(j["port"] for j in jobs if j["name"] == "teacher-mlp/default/s0/wt") == port
    assert len({j["port"] for j in jobs}) == 4

    changed = write_config(tmp_path / "c.json", seeds=[0, 1], rounds=2, tickets=["winning"],
                           ablations={"default": [], "oneshot": ["--lottery-schedule", "oneshot"]},
                           experiment=[{"framework": "torch", "args": ["--epochs", "2", *TINY[2:]]}])
    proc = lth("sweep", changed, sweep)
    assert proc.returncode == 2, proc.stdout
    assert "teacher-mlp/default/s0/wt would change: 1 -> 2" in proc.stdout, proc.stdout
    assert "A sweep may grow (seeds, ablations, tickets, tasks, rounds) but keeps its jobs" in proc.stdout


def test_local_jobs_get_disjoint_gpus_and_a_job_asking_more_than_the_machine_has_is_refused(tmp_path, monkeypatch):
    # no GPU here: the pool is given (local_visible_gpus); each job sees its own through CUDA_VISIBLE_DEVICES
    cfg = write_config(tmp_path / "s.json", seeds=[0, 1, 2], tickets=["winning"], rounds=1, max_parallel=3,
                       executor_params={"local_visible_gpus": [0, 1, 2, 3], "gpus_per_node": 2},
                       experiment=[{"framework": "torch", "args": ["--epochs", "3", "--n-train", "4096"]}])
    sweep = tmp_path / "sw"
    proc = lth("sweep", cfg, sweep, "--poll", "0.2")
    assert proc.returncode == 0, proc.stdout + failed_job_logs(sweep)
    assert "GPUs 0,1,2,3: each job gets its own (2 per job); a job waits for free GPUs" in proc.stdout
    runs = []
    for s in (0, 1, 2):
        st = json.loads((sweep / f"jobs/teacher-mlp__default__s{s}__wt.json").read_text())
        a = st["attempts"][0]
        assert len(st["gpus"]) == 2 and set(st["gpus"]) <= {"0", "1", "2", "3"}
        assert f"GPUs {','.join(st['gpus'])}, port" in Path(st["log"]).read_text()
        runs.append((a["started"], a["ended"], set(st["gpus"])))
    overlapping = [(x, y) for i, x in enumerate(runs) for y in runs[i + 1:] if x[0] < y[1] and y[0] < x[1]]
    assert overlapping, runs  # two jobs ran at once (four GPUs, two each) ...
    for x, y in overlapping:
        assert not x[2] & y[2], (x, y)  # ... on different GPUs

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for params, message in [({"gpus_per_node": 1}, "asks for 1 GPU(s) (gpus_per_node) but this machine has none"),
                            ({"gpus_per_node": 3, "local_visible_gpus": [0, 1]}, "has only 2 (0, 1)")]:
        cfg = write_config(tmp_path / "g.json", seeds=[0], executor_params=params)
        proc = lth("sweep", cfg, tmp_path / "refused")
        assert proc.returncode == 2 and message in proc.stdout, proc.stdout
        assert not (tmp_path / "refused").exists()


def test_without_gpus_per_node_each_local_job_gets_one_gpu_of_a_gpu_machine(tmp_path):
    cfg = write_config(tmp_path / "s.json", executor_params={"local_visible_gpus": [0, 1]})
    proc = lth("sweep", "--dry-run", "--verbose", cfg, tmp_path / "sw")
    assert proc.returncode == 0, proc.stdout
    assert "GPUs 0,1: each job gets its own (1 per job; 1 where gpus_per_node is not given, 0 runs on the CPU)" \
        in proc.stdout
    assert proc.stdout.count("; GPUs: 1\n") == 4


def test_fairseq_jobs_get_their_own_distributed_port(tmp_path):
    pytest.importorskip("fairseq")
    from fairseq_ext.data import make_translation_data

    data = make_translation_data(tmp_path / "corpus", seed=0, n_train=200, n_valid=20, n_test=20)
    cfg = write_config(tmp_path / "s.json", experiment=[{"framework": "fairseq", "data": str(data), "args": [
        "--task", "translation", "--arch", "lstm", "--max-update", "10"]}])
    grid = load_config(cfg, tmp_path / "sw")
    SweepDir(tmp_path / "sw").plan(grid)
    ports = []
    for j in grid.jobs:
        argv = j.command()
        assert argv.count("--distributed-port") == 1
        ports.append(argv[argv.index("--distributed-port") + 1])
    assert len(set(ports)) == len(grid.jobs) == 4
    with pytest.raises(SweepError, match="sets --distributed-port, which the sweep sets: each job gets its own"):
        load_config(write_config(tmp_path / "p.json", experiment=[
            {"framework": "fairseq", "data": str(data), "args": ["--task", "translation", "--distributed-port",
                                                                 "12345"]}]), tmp_path / "sw")


def test_a_sweep_followed_from_another_host_is_not_taken_over(tmp_path):
    """The sweep directory's lock names a sweep process on another node (a login node of the cluster): it is
    never judged from here, and the message names it; its jobs running there count as running."""
    import fcntl

    cfg = load_config(write_config(tmp_path / "s.json", seeds=[0]), tmp_path / "sw")
    sd = SweepDir(tmp_path / "sw")
    sd.open(cfg)
    sd.close()
    record = "4321 login-2.cluster"
    fd = os.open(tmp_path / "sw" / ".sweep.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, record.encode())
        with pytest.raises(SweepError, match=r"another `lth sweep` \(pid 4321 on host login-2.cluster\) is "
                                             r"following .*; stop it first or watch it with `lth status"):
            SweepDir(tmp_path / "sw").open(cfg)
        assert (tmp_path / "sw" / ".sweep.lock").read_text() == record
    finally:
        os.close(fd)
    sd.write_state(cfg.jobs[0], state="running", executor="local", host="login-2.cluster", pid=1)
    status = lth("status", tmp_path / "sw").stdout
    assert "teacher-mlp/default/s0/wt  running" in status, status


def test_status_names_how_slurm_ended_a_job(tmp_path):
    """sacct's word per job (one call for all; its text parsed here for the endings the local SLURM cannot
    produce safely: preemption, node failure, out of memory), and a job whose attempt recorded nothing."""
    from lth_plugins.sweep import accounting
    from lth_plugins.sweep.state import job_state

    cfg = load_config(write_config(tmp_path / "s.json", seeds=[0, 1, 2], tickets=["winning"]), tmp_path / "sw")
    sd = SweepDir(tmp_path / "sw")
    sd.open(cfg)
    sd.close()
    text = ("101|REQUEUED|0:0|None|t|t|n1\n101|PREEMPTED|0:15|None|t|t|n1\n"
            "102|REQUEUED|0:0|None|t|t|n1\n102|NODE_FAIL|0:0|None|t|t|n2\n"
            "103|OUT_OF_MEMORY|0:125|None|t|t|n1\n")
    records = accounting.parse(text)
    assert [records[i].requeues for i in ("101", "102", "103")] == [1, 1, 0]
    for job, job_id in zip(cfg.jobs, ("101", "102", "103")):
        sd.write_state(job, state="running", executor="slurm", job_id=job_id, submitted=0)
    states = [job_state(j, sd, None, records) for j in cfg.jobs]
    assert [s["state"] for s in states] == ["failed"] * 3
    assert [s["error"] for s in states] == ["ended by SLURM: PREEMPTED", "ended by SLURM: NODE_FAIL",
                                            "ended by SLURM: OUT_OF_MEMORY"]
    assert states[0]["scheduler"] == "PREEMPTED; before: REQUEUED"
    assert states[1]["requeues"] == 1
