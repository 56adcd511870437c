"""Fair budgets: a ticket reset to the late snapshot at update j trains updates j+1..T of the dense
schedule, with the update counter, lr schedule and epoch counter continuing from j; budget 'full' keeps the
old behaviour. The core loop (lth_plugins.demo) is a real trainer with a warmup/inverse-sqrt schedule."""
import time

import pytest

from lth_plugins import LotteryConfig, RunStore
from lth_plugins.demo import lr_at, run_ticket
from lth_plugins.errors import LotteryConfigError, RunStoreError

from .waiting import start_thread, wait_for_stderr

# 512 examples in batches of 128: 4 updates per epoch, 3 epochs: T = 12
KW = dict(seed=0, epochs=3, n_train=512)


def rounds(run_dir):
    store = RunStore(run_dir)
    return {k: store.read_round(k) for k in range(int(store.config["lottery"]["rounds"]) + 1)
            if store.round_done(k)}


def test_late_reset_after_an_epoch_trains_the_rest_of_the_schedule(tmp_path, capsys):
    wt = run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), tmp_path / "wt", **KW)
    rt = run_ticket(LotteryConfig(rounds=2, ticket="random", masks_from=str(wt)), tmp_path / "rt", **KW)
    dense = rounds(wt)[0]
    assert dense.curve[-1]["steps"] == 12 and dense.updates == 12 and dense.start["update"] == 0
    j, lr_dense_j1 = dense.curve[0]["updates"], dense.curve[1]["first_lr"]
    assert j == 4 and dense.curve[1]["first_update"] == 5
    assert RunStore(wt).read_snapshot_meta("late")["update"] == 4
    for run_dir in (wt, rt):
        for k, m in rounds(run_dir).items():
            if k == 0:
                continue
            curve = m.curve
            assert [c["epoch"] for c in curve] == [2, 3]  # the epoch counter continues
            assert curve[-1]["steps"] == 12 - j  # optimizer steps actually taken
            assert m.updates == 12 - j and m.start == {"update": 4, "epoch": 1} and m.end_update == 12
            assert curve[0]["first_update"] == j + 1 and curve[0]["first_lr"] == lr_dense_j1 == lr_at(j + 1)
    err = capsys.readouterr().err
    assert "late-reset snapshot taken after update 4, epoch 1; pruned rounds train from there to update 12" in err
    assert "round 1/2 start: 20.0% pruned, from update 4, epoch 1, to update 12" in err
    started = RunStore(rt).read_started(2)
    assert started["start"] == {"update": 4, "epoch": 1} and started["end"]["update"] == 12


def test_late_reset_in_the_middle_of_an_epoch_continues_at_that_batch(tmp_path):
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="5u"), tmp_path / "wt", **KW)
    meta = RunStore(wt).read_snapshot_meta("late")
    assert (meta["update"], meta["epoch"], meta["state"]) == (5, 1, {"batch": 1})
    m = rounds(wt)[1]
    assert [c["epoch"] for c in m.curve] == [2, 3]
    assert m.curve[0]["first_update"] == 6 and m.curve[0]["first_lr"] == lr_at(6)
    assert m.curve[-1]["steps"] == 7 and m.updates == 7


def test_full_budget_is_the_old_behaviour_and_is_recorded(tmp_path, capsys):
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep", budget="full"), tmp_path / "wt", **KW)
    assert RunStore(wt).config["lottery"]["budget"] == "full"
    m = rounds(wt)[1]
    assert m.budget == "full" and m.start["update"] == 0
    assert m.curve[-1]["steps"] == 12 and m.curve[0]["first_lr"] == lr_at(1)
    assert "pruned rounds start again at update 0 (budget 'full')" in capsys.readouterr().err
    with pytest.raises(LotteryConfigError, match="budget 'rest' differs from the winning ticket's 'full'"):
        run_ticket(LotteryConfig(rounds=1, ticket="random", masks_from=str(wt)), tmp_path / "rt", **KW)
    assert not (tmp_path / "rt").exists() or not any((tmp_path / "rt").glob("round_*"))


def test_a_random_ticket_waits_for_the_winning_tickets_masks(tmp_path, capsys):
    wt_dir, rt_dir = tmp_path / "wt", tmp_path / "rt"
    errors = []
    wt_dir.mkdir()  # as a launcher does; the random ticket starts before the winning ticket wrote anything
    thread = start_thread(errors, run_ticket, LotteryConfig(
        rounds=2, ticket="random", masks_from=str(wt_dir), mask_wait=300), rt_dir, **KW)
    waiting = (f"waiting up to 300 s for the winning-ticket run (masks_from, --lottery-masks-from) {wt_dir} to write "
               f"its config.json")
    err = wait_for_stderr(capsys, waiting, thread)  # the WT starts only then
    assert waiting in err, (err, errors)
    run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), wt_dir, **KW)
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    assert all(RunStore(rt_dir).round_done(k) for k in (1, 2))


def test_a_random_ticket_gives_up_after_its_timeout_naming_the_mask(tmp_path, monkeypatch):
    from lth_plugins import wait

    monkeypatch.setattr(wait, "WRITER_START_S", 1.0)
    monkeypatch.setattr(wait, "ALIVE_CHECK_S", 0.2)
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep"), tmp_path / "wt", **KW)
    (RunStore(wt).mask_path(1)).rename(tmp_path / "mask1")  # as if round 0 were still training
    # the winning run is dead: the random ticket fails once it has given it WRITER_START_S to start, naming the
    # mask and the run to resume
    t0 = time.monotonic()
    with pytest.raises(RunStoreError, match=r"the mask of round 1 from the winning-ticket run .* does not exist "
                                            r"and the winning-ticket run .* is not running"):
        run_ticket(LotteryConfig(rounds=1, ticket="random", masks_from=str(wt), mask_wait=3600),
                   tmp_path / "rt", **KW)
    assert time.monotonic() - t0 < 30
    # while it is alive (a process holds its lock), the wait ends at the upper bound
    with RunStore(wt, RunStore(wt).config):
        with pytest.raises(RunStoreError, match=r"gave up after 0.3 s waiting for the mask of round 1 from the "
                                                r"winning-ticket run"):
            run_ticket(LotteryConfig(rounds=1, ticket="random", masks_from=str(wt), mask_wait=0.3),
                       tmp_path / "rt", **KW)
    # the same command again, the winning run resumed beside it: not running at the random ticket's first checks
    # (its framework still loading), it takes its lock within WRITER_START_S and writes the mask, which is used
    monkeypatch.setattr(wait, "WRITER_START_S", 30.0)
    errors = []
    rt = start_thread(errors, run_ticket, LotteryConfig(
        rounds=1, ticket="random", masks_from=str(wt), mask_wait=120), tmp_path / "rt", **KW)
    time.sleep(1.0)
    assert rt.is_alive(), errors
    with RunStore(wt, RunStore(wt).config):
        time.sleep(0.5)
        (tmp_path / "mask1").rename(RunStore(wt).mask_path(1))
        rt.join(timeout=120)
    assert not rt.is_alive() and not errors, errors
    assert RunStore(tmp_path / "rt").round_done(1)


def test_a_late_snapshot_without_a_start_point_is_refused_with_the_way_out(tmp_path):
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep"), tmp_path / "wt", **KW)
    RunStore(wt).snapshot_path("late").with_suffix(".json").unlink()
    with pytest.raises(RunStoreError, match="no recorded start point .*--lottery-budget full"):
        run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), wt, **KW)


def test_status_shows_each_rounds_updates_and_a_running_random_ticket(tmp_path):
    from lth_plugins.demo import make_model
    from lth_plugins.run import LotteryRun
    from lth_plugins.status import round_rows, status_table

    wt = run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), tmp_path / "wt", **KW)
    assert [r["updates"] for r in round_rows(RunStore(wt))] == ["0-12", "4-12", "4-12"]
    model = make_model(0)
    rt_cfg = LotteryConfig(rounds=2, ticket="random", masks_from=str(wt))
    with LotteryRun(rt_cfg, tmp_path / "rt", task="teacher-mlp", framework="torch",
                    settings={"seed": 0, "epochs": 3, "n_train": 512}, total_epochs=3, total_updates=12,
                    model=model) as run:
        run.open_round(1, model)  # training round 1, nothing finished yet
        rows = round_rows(RunStore(tmp_path / "rt"))
        assert (rows[0]["state"], rows[0]["updates"]) == ("in progress", "4-12")
        assert rows[1]["state"] == "pending"
        table = status_table([tmp_path / "rt"])
        assert "random test_accuracy" in table.splitlines()[0]  # the winning run's metric, before any round
    assert round_rows(RunStore(tmp_path / "rt"))[0]["state"] == "interrupted"
    both = status_table([wt, tmp_path / "rt"]).splitlines()
    assert "winning test_accuracy" in both[0] and "random test_accuracy" in both[0]
    assert "4-12" in both[2] and "done" in both[2] and "interrupted" in both[2]


def test_report_puts_prune_rates_side_by_side_and_says_what_it_compares(tmp_path):
    import json

    from lth_plugins.report import build_report
    from tests.test_report import write_experiment

    runs = write_experiment(tmp_path / "p02", seeds=(0,), rounds=4, rate=0.2, task="lstm")
    runs += write_experiment(tmp_path / "p05", seeds=(0,), rounds=2, rate=0.5, task="lstm")
    full = write_experiment(tmp_path / "full", seeds=(0,), rounds=2, rate=0.5, task="lstm", schedule="oneshot")
    for d in full:  # as written before budgets existed: the late-reset rounds retrained the full budget
        cfg = json.loads((d / "config.json").read_text())
        cfg["lottery"].pop("budget")
        (d / "config.json").write_text(json.dumps(cfg))
    build_report(runs + full, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    task = data["tasks"][0]
    assert task["rates"] == [0.2, 0.5] and task["seeds"] == 1
    ablation = next(f for f in task["figures"] if f["kind"] == "ablation")
    series = {s["label"]: s for s in ablation["panels"][0]["series"]}
    p05 = series["winning ticket (iterative, late reset, p=0.5), 1 seed"]
    assert [round(100 * f) for f in p05["fraction_pruned"]] == [0, 50, 75]
    assert "winning ticket (iterative, late reset, p=0.2), 1 seed" in series
    assert "winning ticket (one-shot, late reset, p=0.5, full budget after the reset), 1 seed" in series
    caption = ablation["caption"]
    assert "One seed per curve" in caption and "updates j+1..T" in caption and "'full budget'" in caption
    md = (tmp_path / "out" / "report.md").read_text()
    assert "± 0" not in md and "(1 seed)" in md
    assert "One seed per curve" in (tmp_path / "out" / "index.html").read_text()


def test_a_run_made_before_budgets_continues_only_with_the_full_budget(tmp_path):
    import json

    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep", budget="full"), tmp_path / "wt", **KW)
    cfg = json.loads((wt / "config.json").read_text())
    del cfg["lottery"]["budget"], cfg["lottery"]["mask_wait"]  # as written before issue 13
    (wt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunStoreError, match="lottery.budget: stored 'full' vs now 'rest'"):
        run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), wt, **KW)
    run_ticket(LotteryConfig(rounds=2, late_reset="1ep", budget="full"), wt, **KW)  # extends it
    assert rounds(wt)[2].budget == "full" and rounds(wt)[2].curve[-1]["steps"] == 12
