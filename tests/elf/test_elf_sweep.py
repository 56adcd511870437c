"""`lth sweep` with ELF: a tiny grid (one game, WT/RT, a one-shot ablation, few games and batches, the tiny network)
runs end to end on this CPU; ELF's underscore flags come from the sweep's dashed ones; bad experiments are refused
before anything is written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO, TINY_MODEL, read_metrics, require_elf

require_elf(game=True)

BIN = Path(sys.executable).parent
TINY_ARGS = ["--num_games", "4", "--batchsize", "4", "--torch_threads", "1", "--lottery_epochs", "1",
             "--lottery_epoch_batches", "3", "--lottery_last_games", "4"]


def lth(*args, timeout=900):
    env = dict(os.environ, OMP_NUM_THREADS="1", **TINY_MODEL,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([str(BIN / "lth"), *map(str, args)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=REPO)


def grid(tmp_path, **over):
    cfg = {"executor": "local", "max_parallel": 2, "seeds": [0], "rounds": 1, "lottery": ["--lottery-reset", "init"],
           "ablations": {"default": [], "oneshot": ["--lottery-schedule", "oneshot"]},
           "experiment": [{"framework": "elf", "games": ["Breakout"], "args": TINY_ARGS}]}
    cfg.update(over)
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(cfg))
    return path


def test_a_tiny_elf_grid_runs_end_to_end(tmp_path):
    sweep = tmp_path / "sweep"
    p = lth("sweep", grid(tmp_path), sweep, "--poll", "0.5")
    logs = "\n".join(f.read_text()[-2000:] for f in sorted((sweep / "logs").glob("*.log")))
    assert p.returncode == 0, p.stdout[-3000:] + logs
    runs = sweep / "runs" / "Breakout"
    for ablation in ("default", "oneshot"):
        wt, rt = runs / ablation / "s0" / "wt", runs / ablation / "s0" / "rt"
        assert [read_metrics(wt, k)["round"] for k in (0, 1)] == [0, 1]
        assert read_metrics(rt, 1)["ticket"] == "random" and not (rt / "round_00" / "metrics.json").exists()
        config = json.loads((wt / "config.json").read_text())
        assert config["framework"] == "elf" and config["task"] == "breakout"
        assert config["lottery"]["schedule"] == ("oneshot" if ablation == "oneshot" else "iterative")
        assert config["lottery"]["reset"] == "init" and config["settings"]["num_games"] == 4
        assert json.loads((rt / "config.json").read_text())["lottery"]["masks_from"] == str(wt)
    status = lth("status", sweep)
    assert status.returncode == 0 and status.stdout.count("done") >= 4, status.stdout


@pytest.mark.parametrize("over,message", [
    ({"experiment": [{"framework": "elf", "games": ["Pong-v5"]}]}, "unknown game 'Pong-v5'"),
    ({"experiment": [{"framework": "elf", "games": ["nosuchgame.bin"]}]}, "unknown ROM 'nosuchgame.bin'"),
    ({"experiment": [{"framework": "elf", "games": ["Breakout"], "args": ["--lottery_seed", "3"]}]},
     "sets --lottery_seed, which the sweep sets"),
    ({"experiment": [{"framework": "elf", "games": ["Breakout"], "args": ["--seed", "5"]}]},
     "sets --seed, which the sweep sets"),  # else every grid seed would share one init
    ({"experiment": [{"framework": "elf", "games": ["Breakout"], "args": ["--no_such_flag", "1"]}]},
     "refuses its arguments: unrecognized arguments: --no_such_flag"),
    ({"experiment": [{"framework": "elf", "games": ["Breakout"], "args": ["--lottery_epochs", "0"]}]},
     "--lottery_epochs must be a positive integer"),
])
def test_bad_elf_experiments_are_refused_before_anything_is_written(tmp_path, over, message):
    sweep = tmp_path / "sweep"
    p = lth("sweep", grid(tmp_path, **over), sweep, timeout=120)
    assert p.returncode != 0 and message in p.stdout, p.stdout[-3000:]
    assert not (sweep / "runs").exists()


@pytest.mark.parametrize("name,jobs,games", [("figure2.toml", 54, 9), ("figure4_ablations.toml", 36, 3)])
def test_the_shipped_figure_grids_expand_to_the_papers_runs(name, jobs, games, tmp_path):
    """Every job of examples/elf's configs passes ELF's own parser; each trains on a GPU with the paper's
    settings (elf_ext's defaults), 20 rounds, late reset after epoch 1 unless its ablation says otherwise."""
    from lth_plugins.sweep.config import load_config

    cfg = load_config(REPO / "examples" / "elf" / name, tmp_path / "sweep")
    assert len(cfg.jobs) == jobs and len({j.task for j in cfg.jobs}) == games
    for job in cfg.jobs:
        argv = job.argv
        assert argv[1:3] == ["-m", "elf_ext.train"] and argv[argv.index("--gpu") + 1] == "0"
        assert argv[argv.index("--lottery_rounds") + 1] == "20" and "--lottery_prune" in argv
        assert argv[argv.index("--lottery_run_dir") + 1] == str(job.run_dir)
        if job.ticket == "random":
            assert argv[argv.index("--lottery_masks_from") + 1] == str(job.run_dir.parent / "wt")
    assert not (tmp_path / "sweep").exists()
