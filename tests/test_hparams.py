"""The hyperparameter dataclass doubles as command-line flags."""
import argparse

import pytest

from lth_plugins.errors import LotteryConfigError
from lth_plugins.hparams import LotteryConfig, ResetPoint, fraction_pruned, survivors


def test_every_field_is_a_flag_and_round_trips():
    parser = argparse.ArgumentParser()
    LotteryConfig.add_arguments(parser)
    ns = parser.parse_args(["--lottery-rate", "0.3", "--lottery-rounds", "5", "--lottery-schedule", "oneshot",
                            "--lottery-exclude", "embed*", "--lottery-exclude", "*.bias", "--lottery-seed", "2"])
    cfg = LotteryConfig.from_namespace(ns)
    assert cfg == LotteryConfig(rounds=5, rate=0.3, schedule="oneshot", exclude=("embed*", "*.bias"), seed=2)
    assert LotteryConfig.from_namespace(parser.parse_args([]), run_seed=0) == LotteryConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["--lottery-schedule", "sometimes"])


def test_an_unset_lottery_seed_follows_the_run_seed():
    parser = argparse.ArgumentParser()
    LotteryConfig.add_arguments(parser)
    unset = parser.parse_args([])
    assert [LotteryConfig.from_namespace(unset, run_seed=s).seed for s in (1, 2, 3)] == [1, 2, 3]
    assert LotteryConfig.from_namespace(parser.parse_args(["--lottery-seed", "7"]), run_seed=1).seed == 7
    with pytest.raises(LotteryConfigError, match="no lottery seed"):
        LotteryConfig.from_namespace(unset)


def test_defaults_are_the_papers():
    cfg = LotteryConfig()
    assert (cfg.rounds, cfg.rate, cfg.schedule, cfg.pruner) == (20, 0.2, "iterative", "global_magnitude")
    assert cfg.include == () and cfg.exclude == ()  # every parameter, biases included
    assert round(100 * fraction_pruned(0.2, 20), 1) == 98.8
    assert survivors(1000, 0.2, 3) == 512


def test_reset_points():
    assert ResetPoint.parse("1000u") == ResetPoint(updates=1000)
    assert ResetPoint.parse("1ep") == ResetPoint(epochs=1) and str(ResetPoint.parse("2ep")) == "2ep"


def test_builtin_pruners_and_resets_work_without_installed_entry_points(tmp_path):
    """A plain checkout on sys.path (nothing pip-installed): the core's own plugins are still found."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import importlib.metadata as md\n"
        "md.entry_points = lambda **kw: []  # no installed metadata at all\n"
        "from lth_plugins import LotteryConfig\n"
        "from lth_plugins.demo import run_ticket\n"
        "LotteryConfig(pruner='layerwise_magnitude', reset='init').validate()\n"
        f"run_ticket(LotteryConfig(rounds=1, late_reset='1ep'), {str(tmp_path / 'r')!r}, epochs=2, n_train=256)\n"
        "print('ok')\n")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
