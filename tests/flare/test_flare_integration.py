"""Integration tests against the real FLARE, installed as flare-rl (built from github.com/idlrl/flare, commit
33b71b4, by ``lth deps build flare --source CHECKOUT_OR_TARBALL``; scripts/setup.sh does it when FLARE_SRC is
set, and CI sets it, where a skip here fails the run).

Tiny settings (2 agents, 2 epochs of 4 games): a few seconds per round.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.find_spec("flare")
if _spec is None or _spec.origin is None:
    pytest.skip("FLARE integration tests need flare-rl installed: lth deps build flare --source "
                "<checkout or tarball of github.com/idlrl/flare>", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("flare_probe.py")
TINY = ["--game", "CartPole-v0", "--epochs", "2", "--games-per-epoch", "4", "--last-games", "4",
        "--agents", "2", "--hidden", "32,32,32", "--lr", "1e-3", "--seed", "0"]


def _run(args, timeout=240):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout,
                       cwd=REPO)
    return p


def _probe_lottery(tmp, name, flags):
    out = tmp / f"{name}.json"
    p = _run([str(PROBE), "lottery", str(out), "--", *TINY, "--lottery-prune", "--lottery-rounds", "1",
              "--run-dir", str(tmp / name), *flags])
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(out.read_text()), p


def _metrics(run_dir, k):
    return json.loads((Path(run_dir) / f"round_{k:02d}" / "metrics.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flare")
    wt, pwt = _probe_lottery(tmp, "wt", [])
    rt, prt = _probe_lottery(tmp, "rt", ["--lottery-ticket", "random", "--lottery-masks-from", str(tmp / "wt")])
    return {"tmp": tmp, "wt": wt, "rt": rt, "wt_proc": pwt, "rt_proc": prt}


def test_winning_ticket_two_rounds(runs):
    wt_dir = runs["tmp"] / "wt"
    # round 1 (late reset after epoch 1) plays the rest of the dense schedule: epoch 2, 4 games
    for k, frac, epochs in ((0, 0.0, [1, 2]), (1, 0.2, [2])):
        rec = _metrics(wt_dir, k)
        m = rec["metrics"]
        assert rec["ticket"] == "winning" and rec["primary"] == "ticket_reward"
        assert rec["fraction_pruned"] == pytest.approx(frac, abs=1e-3)
        assert m["games"] == 4 * len(epochs) and m["updates"] > 0 and m["last_games"] == 4
        curve = rec["curve"]
        assert [c["epoch"] for c in curve] == epochs
        rewards = [r for c in curve for r in c["episode_rewards"]]
        assert len(rewards) == m["games"] and all(r >= 1 for r in rewards)  # unscaled CartPole rewards
        assert m["ticket_reward"] == pytest.approx(sum(rewards[-4:]) / 4)
    assert (wt_dir / "round_01" / "mask.lthm").is_file()
    assert "round 1/1 finished" in runs["wt_proc"].stderr


def test_random_ticket_uses_winning_masks(runs):
    rt_dir = runs["tmp"] / "rt"
    assert not (rt_dir / "round_00" / "metrics.json").exists()  # round 0 is the winning ticket's
    rec = _metrics(rt_dir, 1)
    assert rec["ticket"] == "random" and rec["metrics"]["games"] == 4
    assert rec["fraction_pruned"] == pytest.approx(_metrics(runs["tmp"] / "wt", 1)["fraction_pruned"])
    assert [r["round"] for r in runs["rt"]["rounds"]] == [1]


def test_masks_hold_in_flares_model_after_training(runs):
    for kind in ("wt", "rt"):
        for r in runs[kind]["rounds"]:
            assert r["moved"] > 0, r  # FLARE did train the model
            assert r["pruned_nonzero"] == 0, r
            if r["round"] > 0:
                assert r["pruned"] > 0
    wt1 = [r for r in runs["wt"]["rounds"] if r["round"] == 1][0]
    assert wt1["start_equals_snapshot_times_mask"]  # round 1 started from the late snapshot, masked


def test_late_reset_snapshot_taken_after_epoch_one(runs):
    ev = [e for e in runs["wt"]["epochs"] if e["round"] == 0]
    assert [e["epoch"] for e in ev] == [1, 2]
    assert ev[0]["late_before"] is False and ev[0]["late_after"] is True
    assert (runs["tmp"] / "wt" / "snapshots" / "late.pt").is_file()
    rec = _metrics(runs["tmp"] / "wt", 0)
    # taken at the first FLARE update after the M-th game (M=4) finished: not before, and within the round
    assert 0 < rec["curve"][0]["updates"] <= ev[0]["update"] <= rec["metrics"]["updates"]
    import torch

    from lth_plugins.store import RunStore

    store = RunStore(runs["tmp"] / "wt")
    late, init = store.load_snapshot("late"), store.load_snapshot("init")
    assert set(late) == set(init)
    assert any(not torch.equal(late[k], init[k]) for k in init)  # trained for an epoch


def test_dense_baseline_run(tmp_path):
    p = _run(["-m", "flare_ext.a2c", *TINY, "--run-dir", str(tmp_path)])
    assert p.returncode == 0, p.stderr[-4000:]
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert rec["metrics"]["games"] == 8 and len(rec["curve"]) == 2
    assert "dense] ticket reward" in p.stdout


def test_agent_crash_fails_the_run(tmp_path):
    p = _run([str(PROBE), "crash", "--", *TINY, "--games-per-epoch", "50", "--run-dir", str(tmp_path)],
             timeout=120)
    assert p.returncode == 1, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "FLARE agent 1 crashed" in p.stderr and "injected env failure in agent 1" in p.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_late_reset_rounds_continue_the_dense_schedule(runs):
    """Fair budgets: WT and RT rounds after a late reset at epoch 1 play epoch 2 only, FLARE's update counter
    continuing from the snapshot's update; every round ends with the dense round's last epoch."""
    from lth_plugins.store import RunStore

    meta = RunStore(runs["tmp"] / "wt").read_snapshot_meta("late")
    late_update = meta["update"]
    assert meta["epoch"] == 1 and meta["state"] == {"games": 4}
    dense = _metrics(runs["tmp"] / "wt", 0)
    assert 0 < late_update < dense["metrics"]["end_update"] == dense["metrics"]["updates"]
    for kind in ("wt", "rt"):
        rec = _metrics(runs["tmp"] / kind, 1)
        m = rec["metrics"]
        assert rec["start"] == {"update": late_update, "epoch": 1} and m["first_game"] == 4
        assert m["end_update"] == late_update + m["updates"] == rec["end_update"]  # updates = FLARE optimizer steps
        assert rec["curve"][0]["updates"] > late_update
    assert f"round 1/1 start: 20.0% pruned, from update {late_update}, epoch 1, to epoch 2" in runs["wt_proc"].stderr


def test_full_budget_replays_every_epoch(tmp_path):
    rec, _ = _probe_lottery(tmp_path, "wt", ["--lottery-budget", "full"])
    m = _metrics(tmp_path / "wt", 1)
    assert m["budget"] == "full" and m["start"]["update"] == 0 and m["metrics"]["games"] == 8
    assert [c["epoch"] for c in m["curve"]] == [1, 2]
