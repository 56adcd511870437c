"""The round contract the core checks for every adapter: the first update after a reset, a fresh optimizer per
round, the end of the schedule; and the own-loop example that shows a new adapter is a few lines."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lth_plugins.errors import RoundContractError
from lth_plugins.hparams import LotteryConfig
from lth_plugins.record import RoundRecord
from lth_plugins.run import LotteryRun
from lth_plugins.store import RunStore

REPO = Path(__file__).resolve().parents[1]
EPOCHS, PER_EPOCH = 3, 4


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


def open_run(path, **cfg):
    config = LotteryConfig(**{"rounds": 2, "rate": 0.5, "reset": "late", "late_reset": "1ep", **cfg})
    return LotteryRun(config, path, task="t", framework="torch", total_updates=EPOCHS * PER_EPOCH,
                      total_epochs=EPOCHS, progress=False)


def fresh_sgd(model):
    """What a round's `optimizer=` gets: a builder of a fresh optimizer."""
    return lambda: torch.optim.SGD(model.parameters(), lr=0.1)


def train(r, model, optimizer, first_update=None, last_epoch=EPOCHS):
    """A plain loop over random batches; `first_update` overrides the counter's start (a broken adapter)."""
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    update = r.start.update if first_update is None else first_update - 1
    for epoch in range(r.start.epoch + 1, last_epoch + 1):
        for _ in range(PER_EPOCH):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            update += 1
            r.after_update(update, epoch=epoch - 1)
        r.after_epoch(epoch)


def dense_round(run, model):
    with run.round(0, model, optimizer=fresh_sgd(model)) as r:
        train(r, model, r.optimizer)
        r.finish({"m": 1.0}, primary="m", higher_is_better=True)
    return r


def test_a_round_that_restarts_its_counter_after_a_late_reset_is_refused(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r") as run:
        dense_round(run, model)
        with pytest.raises(RoundContractError) as e:
            with run.round(1, model, optimizer=fresh_sgd(model)) as r:
                train(r, model, r.optimizer, first_update=1)
    msg = str(e.value)
    assert "first update was reported as update 1" in msg and "its first update is 5" in msg
    assert "late-reset snapshot at update 4" in msg
    assert not RunStore(tmp_path / "r").round_done(1)


def test_a_reused_optimizer_is_refused(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r") as run:
        kept = torch.optim.SGD(model.parameters(), lr=0.1)
        with run.round(0, model, optimizer=lambda: kept) as r:
            train(r, model, kept)
            r.finish({"m": 1.0}, primary="m", higher_is_better=True)
        with pytest.raises(RoundContractError, match="round 1 reuses the optimizer of round 0"):
            with run.round(1, model, optimizer=lambda: kept):
                pass
    assert not RunStore(tmp_path / "r").round_done(1)


def test_an_optimizer_holding_earlier_state_is_refused(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r") as run:
        r0 = dense_round(run, model)
        moments = torch.optim.Adam(model.parameters())
        moments.zero_grad()
        model(torch.randn(2, 8)).sum().backward()
        moments.step()  # state carried in from elsewhere
        with pytest.raises(RoundContractError, match=r"holds state for 4 parameters before the round's first"):
            with run.round(1, model, optimizer=lambda: moments):
                pass
        assert r0.optimizer is not moments


def test_a_round_that_stops_before_the_end_is_refused_unless_it_names_why(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r") as run:
        dense_round(run, model)
        with pytest.raises(RoundContractError) as e:
            with run.round(1, model, optimizer=fresh_sgd(model)) as r:
                train(r, model, r.optimizer, last_epoch=2)
                r.finish({"m": 1.0}, primary="m", higher_is_better=True)
        assert "round 1 ended at update 8, epoch 2" in str(e.value) and "update 12 / epoch 3" in str(e.value)
        assert not RunStore(tmp_path / "r").round_done(1)
        with run.round(1, model, optimizer=fresh_sgd(model)) as r:
            train(r, model, r.optimizer, last_epoch=2)
            r.finish({"m": 1.0}, primary="m", higher_is_better=True, ended_early="patience 1")
    record = RunStore(tmp_path / "r").read_round(1)
    assert record.training["ended_early"] == "patience 1" and record.end_update == 8 and record.updates == 4


def test_updates_before_an_optimizer_and_a_counter_going_back_are_refused(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r") as run:
        with pytest.raises(RoundContractError, match="before its optimizer was handed over"):
            with run.round(0, model) as r:
                r.after_update(1)
    with open_run(tmp_path / "r") as run:
        with pytest.raises(RoundContractError, match="went from 2 to 2"):
            with run.round(0, model, optimizer=fresh_sgd(model)) as r:
                r.after_update(1)
                r.after_update(2)
                r.after_update(2)


def test_a_full_budget_round_starts_at_update_one(tmp_path):
    model = make_model()
    with open_run(tmp_path / "r", budget="full") as run:
        dense_round(run, model)
        with pytest.raises(RoundContractError, match="starts after update 0"):
            with run.round(1, model, optimizer=fresh_sgd(model)) as r:
                r.after_update(5)


def test_records_of_every_version_read_and_round_trip(tmp_path):
    old = {"round": 1, "ticket": "winning", "fraction_pruned": 0.5, "nominal_fraction_pruned": 0.5,
           "surviving": 10, "selected": 20, "primary": "m", "higher_is_better": True, "metrics": {"m": 2.0},
           "curve": [], "finished_at": 1.0, "budget": "rest", "start": {"update": 4, "epoch": 1},
           "end_update": 12, "updates": 8, "training": {}}
    rec = RoundRecord.from_json(old)
    assert rec.version == 1 and rec.value == 2.0 and rec.start_update == 4
    assert RoundRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    with pytest.raises(ValueError, match="'metrics' is not a mapping"):
        RoundRecord.from_json(dict(old, metrics=[1]))


def test_the_own_loop_example_runs_with_no_arguments_in_at_most_80_lines(tmp_path):
    script = REPO / "examples" / "own_loop.py"
    assert len(script.read_text().splitlines()) <= 80
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    *table, note = out.stdout.splitlines()[1:]  # the rounds, then that raising rounds would extend the run
    rows = [line.split() for line in table]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"] and all(r[-1] == "done" for r in rows)
    assert note.endswith("is made, so the same run with rounds 4 or more extends it"), note
    assert [r[1] for r in rows] == ["0.0%", "50.0%", "75.0%", "87.5%"]
    assert [r[3] for r in rows] == ["0-64", "16-64", "16-64", "16-64"]  # late reset after epoch 1: 16 updates
    run_dir = next(Path(tmp_path).glob("own_loop_*"))
    again = subprocess.run([sys.executable, str(script), str(run_dir)], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0 and again.stdout == out.stdout  # finished rounds are not trained again
