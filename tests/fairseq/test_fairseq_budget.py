"""Fair budgets on fairseq (issue 13): with a late reset after j updates, rounds k >= 1 of the winning and the
random ticket take exactly T - j optimizer steps, updates j+1..T, and the lr of their first step is the dense
round's lr at update j+1 (fairseq's inverse_sqrt and fixed schedules), read from fairseq's own per-update log."""
import json

import pytest

from .helpers import MT_MODEL, fairseq_train, metrics

LOG = ["--log-format", "json", "--log-interval", "1"]


def train_inner(log: str, round_k: int, rounds: int):
    """fairseq's per-update log lines (num_updates, lr after that update) of round k."""
    start = log.index(f"round {round_k}/{rounds} start")
    end = log.find(f"round {round_k}/{rounds} finished", start)
    out = []
    for line in log[start:end].splitlines():
        if '"num_updates"' in line and "train_inner" in line:
            rec = json.loads(line[line.index("{"):])
            out.append((int(rec["num_updates"]), float(rec["lr"])))
    return out


def lr_after(lines, n):
    """fairseq logs, after update n, the lr that update n+1 uses."""
    return next(lr for u, lr in lines if u == n)


def test_inverse_sqrt_late_reset_rounds_train_updates_j_plus_1_to_T(mt_data, tmp_path):
    common = [*MT_MODEL, "--max-update", "40", "--lottery-prune", "--lottery-rounds", "1", *LOG]
    wt_log = fairseq_train(mt_data, tmp_path / "wt", *common, "--lottery-reset", "late",
                           "--lottery-late-reset", "10u").stdout
    rt_log = fairseq_train(mt_data, tmp_path / "rt", *common, "--lottery-ticket", "random",
                           "--lottery-masks-from", str(tmp_path / "wt")).stdout
    dense = train_inner(wt_log, 0, 1)
    assert [u for u, _ in dense] == list(range(1, 41))
    assert "late-reset snapshot taken after update 10, epoch 2" in wt_log
    assert metrics(tmp_path / "wt", 0)["training"]["optimizer_steps"] == 40
    lr_11 = lr_after(dense, 10)
    assert lr_11 == pytest.approx(0.005 * 10 / 30, rel=1e-5)  # warmup: lr(10) = 10 * lr / warmup (logged to 6 digits)
    for run_dir, log in ((tmp_path / "wt", wt_log), (tmp_path / "rt", rt_log)):
        assert "round 1/1 start: 20.0% pruned, from update 10, epoch 2, to update 40" in log
        lines = train_inner(log, 1, 1)
        assert [u for u, _ in lines] == list(range(11, 41))  # fairseq's own update counter
        # after each update the ticket's lr is the dense round's at the same update
        assert all(lr == pytest.approx(lr_after(dense, u)) for u, lr in lines)
        rec = metrics(run_dir, 1)
        assert rec["training"]["optimizer_steps"] == 30  # torch optimizer steps actually taken
        assert rec["training"]["first_update"] == 11
        assert rec["training"]["first_lr"] == pytest.approx(0.005 * 10 / 30)
        assert rec["training"]["first_lr"] == pytest.approx(lr_11, rel=1e-5)
        assert rec["start"] == {"update": 10, "epoch": 2}  # 4 updates per epoch and rec["end_update"] == 40 and rec["updates"] == 30
        assert rec["metrics"]["num_updates"] == 40


def test_full_budget_flag_keeps_the_old_behaviour(mt_data, tmp_path):
    log = fairseq_train(mt_data, tmp_path / "wt", *MT_MODEL, "--max-update", "20", "--lottery-prune",
                        "--lottery-rounds", "1", "--lottery-late-reset", "5u", "--lottery-budget", "full",
                        *LOG).stdout
    assert "pruned rounds start again at update 0 (budget 'full')" in log
    assert [u for u, _ in train_inner(log, 1, 1)] == list(range(1, 21))
    rec = metrics(tmp_path / "wt", 1)
    assert rec["budget"] == "full" and rec["training"]["optimizer_steps"] == 20
    assert rec["training"]["first_lr"] == 0.0  # inverse_sqrt warmup from 0, as at the dense round's update 1
    assert json.loads((tmp_path / "wt" / "config.json").read_text())["lottery"]["budget"] == "full"


def test_fixed_schedule_late_reset_after_an_epoch_continues_at_epoch_2(mt_data, tmp_path):
    args = [*MT_MODEL, "--max-epoch", "3", "--lottery-prune", "--lottery-rounds", "1",
            "--lottery-late-reset", "1ep", *LOG]
    i = args.index("--lr-scheduler")
    args[i + 1] = "fixed"
    args[args.index("--lr") + 1] = "0.005,0.002,0.001"
    args[args.index("--warmup-updates") + 1] = "0"
    log = fairseq_train(mt_data, tmp_path / "wt", *args).stdout
    dense = train_inner(log, 0, 1)
    total = dense[-1][0]
    meta = json.loads((tmp_path / "wt" / "snapshots" / "late.json").read_text())
    j = meta["update"]
    assert meta["epoch"] == 1 and 0 < j < total
    assert meta["state"]["train_iterator"]["epoch"] == 2
    lines = train_inner(log, 1, 1)
    assert [u for u, _ in lines] == list(range(j + 1, total + 1))
    rec = metrics(tmp_path / "wt", 1)
    assert rec["training"]["optimizer_steps"] == total - j
    assert rec["training"]["first_lr"] == pytest.approx(0.002)  # epoch 2's lr, as in the dense round
    assert all(lr == pytest.approx(lr_after(dense, u)) for u, lr in lines)
    assert [c["num_updates"] for c in rec["curve"]][-1] == total
