"""`lth sweep` trains each dense round 0 once: winning tickets of one task and seed whose dense round is the same
reuse it (`--lottery-dense-from`), with the results of training it again; the choice on made-up grids, a grid
killed and resumed, a grid started before sharing, and the switch (`share_dense`)."""
import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from lth_plugins import RunStore
from lth_plugins.sources import dense_round_mismatch
from lth_plugins.sweep.dense import dense_config
from lth_plugins.sweep.config import load_config
from lth_plugins.sweep.policy import Policy
from lth_plugins.sweep.state import SweepDir
from lth_plugins.sweep.vocabulary import JobState

from . import sweep_helpers
from .sweep_helpers import failed_job_logs, finished_rounds, lth, run_and_kill

pytest.importorskip("submitit")

TINY = ["--epochs", "1", "--n-train", "768", "--lottery-late-reset", "2u"]
ONESHOT = {"default": [], "oneshot": ["--lottery-schedule", "oneshot"]}


def write_config(path: Path, **over) -> Path:
    cfg = {"seeds": [0, 1], "rounds": 2, "max_parallel": 2, "ablations": ONESHOT,
           "experiment": [{"framework": "torch", "args": TINY}]}
    cfg.update(over)
    return sweep_helpers.write_config(path, cfg)


def winning_runs(sweep: Path):
    return sorted(sweep.glob("runs/*/*/s*/wt"))


def dense_rounds_trained(sweep: Path):
    """The winning runs whose round 0 record says it was trained there, not taken from another run."""
    return [r for r in winning_runs(sweep) if RunStore(r).read_round(0).dense_from is None]


def results(run_dir: Path):
    """Every round's metrics, survivors and mask: what a run computed, without when it computed it."""
    store = RunStore(run_dir)
    return {k: (store.read_round(k).metrics, store.read_round(k).surviving,
                store.load_mask(k).checksum() if store.has_mask(k) else None) for k in store.finished_rounds()}


def planned(tmp_path, sweep, **over):
    cfg = load_config(write_config(tmp_path / "plan.json", **over), sweep)
    SweepDir(sweep).plan(cfg)
    return {j.name: j.dense_from for j in cfg.jobs if j.ticket == "winning"}


# --- which job trains, which reuses (no job runs) -----------------------------------------------------------------
def test_the_job_that_most_others_can_reuse_trains_and_other_settings_train_their_own(tmp_path):
    plan = planned(tmp_path, tmp_path / "sw", seeds=[0, 1], tickets=["winning"], ablations={
        "init": ["--lottery-reset", "init"],           # first in the grid, but its run keeps no late snapshot
        "default": [], "oneshot": ["--lottery-schedule", "oneshot"],
        "late3": ["--lottery-late-reset", "3u"],       # another late snapshot: another dense round
        "longer": ["--epochs", "2"]})                  # the framework's own settings: another dense round
    for s in (0, 1):
        assert plan[f"teacher-mlp/default/s{s}/wt"] is None
        for ablation in ("init", "oneshot"):
            assert plan[f"teacher-mlp/{ablation}/s{s}/wt"] == f"teacher-mlp/default/s{s}/wt"
        assert plan[f"teacher-mlp/late3/s{s}/wt"] is None and plan[f"teacher-mlp/longer/s{s}/wt"] is None
    cfg = load_config(write_config(tmp_path / "c.json", seeds=[0]), tmp_path / "sw")
    SweepDir(tmp_path / "sw").plan(cfg)
    wt = cfg.job("teacher-mlp/oneshot/s0/wt")
    i = wt.argv.index("--lottery-dense-from")
    assert wt.argv[i + 1] == str(cfg.job("teacher-mlp/default/s0/wt").run_dir)
    assert "--lottery-dense-from" not in " ".join(cfg.job("teacher-mlp/oneshot/s0/rt").argv)
    # another interpreter (another sweep's virtual environment) shapes nothing; another framework flag does
    default = cfg.job("teacher-mlp/default/s0/wt")
    elsewhere = replace(default, argv=["/other/venv/bin/python", *default.argv[1:]])
    longer = replace(default, argv=[*default.argv, "--epochs", "2"])
    assert dense_round_mismatch(dense_config(elsewhere), dense_config(wt), "there") is None
    assert "settings.command" in dense_round_mismatch(dense_config(longer), dense_config(wt), "there")
    off = planned(tmp_path, tmp_path / "sw", share_dense=False)
    assert set(off.values()) == {None} and len(off) == 4


def test_a_reusing_job_is_submitted_once_the_dense_round_has_finished(tmp_path):
    cfg = load_config(write_config(tmp_path / "s.json", seeds=[0], tickets=["winning"]), tmp_path / "sw")
    SweepDir(tmp_path / "sw").plan(cfg)
    done = set()
    policy = Policy(cfg.jobs, None, lambda run_dir, k: False, lambda run_dir: str(run_dir) in done)
    trainer, reuser = cfg.job("teacher-mlp/default/s0/wt"), cfg.job("teacher-mlp/oneshot/s0/wt")
    states = {j.name: {"state": JobState.PENDING, "done": 0} for j in cfg.jobs}
    assert policy.to_submit(states, set()) == [trainer]
    states[trainer.name] = {"state": JobState.RUNNING, "done": 0}
    assert policy.to_submit(states, {trainer.name}) == []
    done.add(str(trainer.run_dir))
    assert policy.to_submit(states, {trainer.name}) == [reuser]
    done.clear()
    states[trainer.name] = {"state": JobState.FAILED, "done": 0}
    failed, rest = policy.not_done(states, {trainer.name})
    assert rest == [(reuser.name, f"{trainer.name}, whose dense round it reuses, failed")]


# --- grids that run --------------------------------------------------------------------------------------------
def test_two_ablations_by_two_seeds_train_two_dense_rounds_with_the_results_of_four(tmp_path):
    shared_cfg = write_config(tmp_path / "shared.json")
    dry = lth("sweep", "--dry-run", "--verbose", shared_cfg, tmp_path / "shared")
    assert dry.returncode == 0, dry.stdout
    assert "dense rounds: 2 trained, 2 reused; winning tickets of one task and seed share" in dry.stdout
    assert ("teacher-mlp/oneshot/s1/wt: new (submitted once teacher-mlp/default/s1/wt has finished its dense "
            "round)\n") in dry.stdout
    assert "  dense:     reuses round 0 of teacher-mlp/default/s1/wt\n" in dry.stdout
    assert "  dense:     trains its own round 0, reused by teacher-mlp/oneshot/s0/wt\n" in dry.stdout

    shared = lth("sweep", shared_cfg, tmp_path / "shared", "--poll", "0.3")
    assert shared.returncode == 0, shared.stdout[-3000:] + failed_job_logs(tmp_path / "shared")
    assert "finished: 8 of 8 jobs done" in shared.stdout
    trained = dense_rounds_trained(tmp_path / "shared")
    assert [r.relative_to(tmp_path / "shared/runs") for r in trained] == [
        Path(f"teacher-mlp/default/s{s}/wt") for s in (0, 1)]
    status = lth("status", tmp_path / "shared").stdout
    assert "reuses round 0 of teacher-mlp/default/s0/wt" in status, status

    own_cfg = write_config(tmp_path / "own.json", share_dense=False, tickets=["winning"])
    assert "dense rounds: 4 trained, 0 reused; share_dense = false" in lth(
        "sweep", "--dry-run", own_cfg, tmp_path / "own").stdout
    own = lth("sweep", own_cfg, tmp_path / "own", "--poll", "0.3")
    assert own.returncode == 0, own.stdout[-3000:] + failed_job_logs(tmp_path / "own")
    assert len(dense_rounds_trained(tmp_path / "own")) == 4
    for run in winning_runs(tmp_path / "own"):  # every round of every winning ticket, bit for bit
        mine = results(tmp_path / "shared" / run.relative_to(tmp_path / "own"))
        assert mine == results(run) and sorted(mine) == [0, 1, 2], run


def test_a_sweep_killed_while_ablations_reuse_a_dense_round_resumes(tmp_path):
    cfg_path = write_config(tmp_path / "sweep.json", seeds=[0], rounds=3, tickets=["winning"],
                            experiment=[{"framework": "torch", "args": ["--epochs", "4", "--n-train", "4096",
                                                                        "--lottery-late-reset", "3u"]}])
    sweep = tmp_path / "sw"
    reuser = sweep / "runs/teacher-mlp/oneshot/s0/wt"
    run_and_kill(cfg_path, sweep, [], lambda: (reuser / "round_01/started.json").is_file(), tmp_path / "first.log")
    assert not (reuser / "round_03/metrics.json").is_file(), "the grid ended before the kill"
    before = finished_rounds(sweep)
    again = lth("sweep", cfg_path, sweep, "--poll", "0.3")
    assert again.returncode == 0, again.stdout[-3000:] + failed_job_logs(sweep)
    assert "finished: 2 of 2 jobs done" in again.stdout
    for p, mtime in before.items():  # nothing finished is trained again, round 0 included
        assert p.stat().st_mtime_ns == mtime, p
    assert dense_rounds_trained(sweep) == [sweep / "runs/teacher-mlp/default/s0/wt"]
    assert RunStore(reuser).read_round(0).dense_from == str(sweep / "runs/teacher-mlp/default/s0/wt")


def test_a_grid_started_before_sharing_keeps_its_own_dense_rounds_and_shares_from_then_on(tmp_path):
    sweep = tmp_path / "sw"
    first = write_config(tmp_path / "a.json", seeds=[0], tickets=["winning"], share_dense=False)
    proc = lth("sweep", first, sweep, "--poll", "0.3")
    assert proc.returncode == 0, proc.stdout[-3000:] + failed_job_logs(sweep)
    recorded = json.loads((sweep / "sweep.json").read_text())  # as a version without sharing wrote it
    del recorded["data"]["share_dense"]
    for job in recorded["jobs"]:
        del job["dense_from"], job["dense_dir"], job["dense_flag"]
    (sweep / "sweep.json").write_text(json.dumps(recorded))
    before = finished_rounds(sweep)

    grown = write_config(tmp_path / "b.json", seeds=[0, 1], tickets=["winning"])
    proc = lth("sweep", grown, sweep, "--poll", "0.3")
    assert proc.returncode == 0, proc.stdout[-3000:] + failed_job_logs(sweep)
    assert "dense rounds: 3 trained, 1 reused" in proc.stdout
    for p, mtime in before.items():
        assert p.stat().st_mtime_ns == mtime, p
    assert [r.relative_to(sweep / "runs") for r in dense_rounds_trained(sweep)] == [
        Path("teacher-mlp/default/s0/wt"), Path("teacher-mlp/default/s1/wt"), Path("teacher-mlp/oneshot/s0/wt")]

    # turned off later, the job that reuses keeps doing so; new jobs train their own
    off = write_config(tmp_path / "c.json", seeds=[0, 1, 2], tickets=["winning"], share_dense=False)
    dry = lth("sweep", "--dry-run", "--verbose", off, sweep)
    assert dry.returncode == 0, dry.stdout
    assert "dense rounds: 5 trained, 1 reused; share_dense = false: every winning ticket trains its own, except " \
           "jobs that started reusing one" in dry.stdout
    assert "teacher-mlp/oneshot/s1/wt: done, 3/3 rounds (not submitted)\n" in dry.stdout
    block = dry.stdout.split("teacher-mlp/oneshot/s1/wt: done")[1].split("\n\n")[0]
    assert "dense:     reuses round 0 of teacher-mlp/default/s1/wt" in block, block


# --- another sweep's dense rounds ---------------------------------------------------------------------------------
def test_a_grid_reuses_the_dense_rounds_of_another_sweep_running_beside_it(tmp_path):
    """Figure 4's ablations beside Figure 2's main runs: the ablations' sweep, started while the main sweep trains
    the dense round, waits for it instead of ending, and trains no dense round of its own."""
    main = tmp_path / "main"
    slow = ["--epochs", "80", "--n-train", "6144", "--lottery-late-reset", "3u"]  # round 0 lasts long seconds
    common = {"seeds": [0], "rounds": 1, "tickets": ["winning"], "experiment": [{"framework": "torch", "args": slow}]}
    main_cfg = write_config(tmp_path / "main.json", ablations={"default": []}, **common)
    main_sweep = subprocess.Popen([str(sweep_helpers.BIN / "lth"), "sweep", str(main_cfg), str(main), "--poll", "0.3"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 120
        while not (main / "sweep.json").is_file():
            assert main_sweep.poll() is None and time.time() < deadline, main_sweep.stdout.read()
            time.sleep(0.05)
        trainer = main / "runs/teacher-mlp/default/s0/wt"
        assert not (trainer / "round_00/metrics.json").is_file()
        ablations = write_config(tmp_path / "ab.json", dense_from=str(main),
                                 ablations={"oneshot": ["--lottery-schedule", "oneshot"]}, **common)
        proc = lth("sweep", ablations, tmp_path / "ab", "--poll", "0.3")
        out, _ = main_sweep.communicate(timeout=600)
    finally:
        main_sweep.kill()
        main_sweep.wait()
    assert main_sweep.returncode == 0, out[-3000:] + failed_job_logs(main)
    assert proc.returncode == 0, proc.stdout[-3000:] + failed_job_logs(tmp_path / "ab")
    assert f"dense rounds: 0 trained, 1 reused (1 of the sweep {main})" in proc.stdout, proc.stdout
    assert f"waiting for dense rounds of the sweep {main}, which another `lth sweep` follows" in proc.stdout
    assert RunStore(tmp_path / "ab/runs/teacher-mlp/oneshot/s0/wt").read_round(0).dense_from == str(trainer)
    again = lth("sweep", ablations, tmp_path / "ab")  # a rerun finds the same plan, with nothing left to do
    assert again.returncode == 0 and "submitted" not in again.stdout, again.stdout

    for over, message in [
            (dict(dense_from=str(tmp_path / "none")), f"dense_from = '{tmp_path / 'none'}': {tmp_path / 'none'} "
                                                      f"is not a sweep directory (no sweep.json)"),
            (dict(dense_from=str(tmp_path / "new")), "is this sweep directory; name another sweep's"),
            (dict(dense_from=str(main), share_dense=False), "share_dense = false turns off: drop one of them"),
            (dict(dense_from=str(main), experiment=[{"framework": "torch", "args": ["--epochs", "2", *slow[2:]]}]),
             f"dense_from = '{main}': no winning ticket of this grid can reuse a dense round of that sweep; "
             f"teacher-mlp/oneshot/s0/wt: {main}:teacher-mlp/default/s0/wt trained its dense round with other "
             f"settings"),
            (dict(dense_from=str(main), seeds=[5]), f"{main} has no winning ticket of task 'teacher-mlp' and seed 5")]:
        cfg = write_config(tmp_path / "bad.json", **{**common, "ablations": {"oneshot": ["--lottery-schedule",
                                                                                       "oneshot"]}, **over})
        proc = lth("sweep", "--dry-run", cfg, tmp_path / "new")
        assert proc.returncode == 2 and message in proc.stdout and proc.stdout.count("lth: error:") == 1, \
            (message, proc.stdout)
        assert not (tmp_path / "new").exists()
