"""`lth sweep` of tiny FLARE CartPole runs (2 seeds x WT/RT x 2 rounds) on submitit's local executor: killed in the
middle, resumed by the same command, then `lth status` and `lth report` of the sweep."""
import importlib.util
import json

import pytest

from ..sweep_helpers import (failed_job_logs, finished_rounds, lth, run_and_kill, submitted_while_winning_trains,
                             write_config)

if importlib.util.find_spec("flare") is None:
    pytest.skip("FLARE sweep tests need flare-rl installed: lth deps build flare --source <checkout or tarball>",
                allow_module_level=True)
pytest.importorskip("submitit")

TINY = ["--epochs", "2", "--games-per-epoch", "4", "--last-games", "4", "--agents", "2", "--hidden", "32,32,32",
        "--lr", "1e-3"]


def test_flare_sweep_killed_and_resumed(tmp_path):
    cfg = write_config(tmp_path / "sweep.json", {
        "seeds": [0, 1], "rounds": 2, "max_parallel": 4,
        "experiment": [{"framework": "flare", "games": ["CartPole-v0"], "args": TINY}]})
    sweep = tmp_path / "sw"
    base = sweep / "runs/CartPole-v0/default"
    pairs = [(base / f"s{s}/wt", base / f"s{s}/rt") for s in (0, 1)]
    run_and_kill(cfg, sweep, pairs, lambda: any((wt / "round_01/metrics.json").is_file() for wt, _ in pairs),
                 tmp_path / "first.log")
    log = (sweep / "sweep.log").read_text()  # whichever seed's winning ticket got ahead: its RT is pipelined
    assert any(submitted_while_winning_trains(log, f"CartPole-v0/default/s{s}/wt", f"CartPole-v0/default/s{s}/rt")
               for s in (0, 1)), log
    before = finished_rounds(sweep)
    assert before
    again = lth("sweep", cfg, sweep, "--poll", "0.3")
    assert again.returncode == 0, again.stdout[-4000:] + failed_job_logs(sweep)
    for p, mtime in before.items():
        assert p.stat().st_mtime_ns == mtime, p
    status = lth("status", sweep).stdout
    assert "4 jobs: 4 done" in status and "ticket_reward" in status, status
    for wt, rt in pairs:  # the random ticket trained on its winning ticket's masks
        for k in (1, 2):
            assert json.loads((rt / f"round_{k:02d}/metrics.json").read_text())["fraction_pruned"] == \
                json.loads((wt / f"round_{k:02d}/metrics.json").read_text())["fraction_pruned"]
    report = lth("report", sweep, "-o", tmp_path / "report")
    assert report.returncode == 0, report.stdout
    assert (tmp_path / "report" / "index.html").is_file()


@pytest.mark.parametrize("lottery, says", [
    (["--lottery-rate", "2"], "prune rate must lie strictly between 0 and 1, got 2.0"),
    (["--lottery-late-reset", "5ep"], "late reset point 5ep lies beyond the training length of 2 epochs"),
])
def test_a_bad_lottery_value_refuses_the_grid_naming_the_job(tmp_path, lottery, says):
    cfg = write_config(tmp_path / "sweep.json", {
        "seeds": [0], "rounds": 2, "lottery": lottery,
        "experiment": [{"framework": "flare", "games": ["CartPole-v0"], "args": TINY}]})
    proc = lth("sweep", "--dry-run", cfg, tmp_path / "sw")
    assert proc.returncode == 2, proc.stdout
    assert "job CartPole-v0/default/s0/wt: python -m flare_ext.a2c refuses its arguments" in proc.stdout, proc.stdout
    assert says in proc.stdout and not (tmp_path / "sw").exists(), proc.stdout
