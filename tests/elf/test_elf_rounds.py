"""ELF lottery runs as the paper measured them, on the real ELF with a tiny network (games finish in seconds):
the ticket reward on the raw game score beside the clipped one, rounds over fewer than L games flagged, a run
killed mid-round resuming from its last epoch, a finished run leaving without starting emulators, the settings
that identify a run, flags refused without --lottery_prune, and threads.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import (PROBE, REPO, TINY_MODEL, read_events, read_metrics, require_elf, run_python,
                      subprocess_env)

require_elf(game=True)

# ELF's game start prints these; a run that leaves before starting its emulators prints neither
GAME_STARTED = ("Num Actions:", "#recv_thread")


def lottery(run_dir, *flags, rom="breakout.bin", games=4, epochs=2, batches=5, last=4, rounds=1):
    return ["-m", "elf_ext.train", "--rom_file", rom, "--num_games", games, "--batchsize", 4, "--T", 6,
            "--torch_threads", 1, "--lottery_prune", "--lottery_run_dir", run_dir, "--lottery_epochs", epochs,
            "--lottery_epoch_batches", batches, "--lottery_last_games", last, "--lottery_rounds", rounds, *flags]


def probed(out, cmd):
    return [PROBE, out, "--", *cmd[2:]]


def test_ticket_reward_is_the_raw_game_score_and_training_sees_clipped_rewards(tmp_path):
    """Space Invaders scores 5 to 30 points per alien: the ticket reward (raw score) is far above the clipped sum,
    the actor sees raw rewards, the trainer learns from rewards clipped to [-1, 1]. Round 0 finishes fewer games
    than L = 50 (flagged partial); round 1 (5 batches after the late reset) finishes none."""
    run_dir, probe = tmp_path / "si", tmp_path / "probe.jsonl"
    p = run_python(probed(probe, lottery(run_dir, "--lottery_late_reset", "295u", rom="space_invaders.bin",
                                         epochs=1, batches=300, last=50)), timeout=900, **TINY_MODEL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    m = read_metrics(run_dir, 0)["metrics"]
    assert 1 <= m["ticket_games"] < 50 and m["last_games"] == 50
    assert m["ticket_reward_partial"] == f"only {m['ticket_games']} of the last 50 games finished"
    assert m["ticket_reward"] > 2 * m["ticket_reward_clipped"] > 0
    curve = read_metrics(run_dir, 0)["curve"]
    scores = [s for e in curve for s in e["episode_rewards"]]
    assert len(scores) == m["ticket_games"] and all(s % 5 == 0 for s in scores)  # Space Invaders' points
    assert curve[-1]["mean_reward_clipped"] == pytest.approx(m["ticket_reward_clipped"])
    epochs = [e for e in read_events(probe) if e["event"] == "epoch"]
    assert epochs[-1]["actor_max_r"] >= 5 and epochs[-1]["train_max_r"] == 1.0
    m1 = read_metrics(run_dir, 1)["metrics"]
    assert m1["ticket_reward"] is None and m1["ticket_games"] == 0
    assert m1["ticket_reward_partial"] == "no game finished in this round"


def test_killed_mid_round_resumes_from_its_last_epoch(tmp_path):
    """Killed during epoch 3 of round 0 (resume point at update 8): the rerun continues at update 8 with the
    saved Adam state and finished games, redoes less than one epoch, and leaves only the kept checkpoints."""
    run_dir, probe = tmp_path / "wt", tmp_path / "probe.jsonl"
    cmd = probed(probe, lottery(run_dir, "--lottery_late_reset", "1ep", "--lottery_keep_checkpoints", "2",
                                epochs=3, batches=4))
    p = subprocess.Popen([sys.executable, *map(str, cmd)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=subprocess_env(**TINY_MODEL), cwd=REPO)
    killed_at, deadline = None, time.monotonic() + 300
    try:
        while time.monotonic() < deadline and p.poll() is None:
            updates = [e["updates"] for e in read_events(probe) if e["event"] == "update"] if probe.exists() else []
            if updates and updates[-1] >= 9:  # inside epoch 3, after epoch 2's resume point
                p.send_signal(signal.SIGKILL)
                killed_at = updates[-1]
                break
            time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
    assert killed_at is not None and killed_at < 12, "the run was not killed inside epoch 3"
    assert not (run_dir / "round_00" / "metrics.json").exists()
    assert (run_dir / "elf" / "round_00" / "resume.pt").is_file()

    rerun = run_python(cmd, timeout=300, **TINY_MODEL)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    starts = [e for e in read_events(probe) if e["event"] == "start" and e["round"] == 0]
    assert [s["resumed"] for s in starts] == [False, True]
    resumed = starts[1]
    assert resumed["updates"] == 8 and resumed["adam_steps"] == 8 and resumed["games"] == resumed["saved_games"]
    redone = killed_at - resumed["updates"]
    assert 1 <= redone < 4  # less than one epoch of 4 batches trained twice
    record = read_metrics(run_dir, 0)
    assert record["training"]["resumed_at_update"] == [8]
    assert record["metrics"]["updates"] == 12 and record["metrics"]["start_update"] == 0
    assert [e["epoch"] for e in record["curve"]] == [1, 2, 3]  # epochs 1-2 from the killed process
    log = (run_dir / "train.log").read_text()
    assert log.count("round 0] epoch 1/3") == 1 and log.count("round 0] epoch 3/3") == 1
    assert "resumed at update 8 (epoch 2)" in log
    for k in (0, 1):  # the two last epochs' ELF checkpoints kept (--lottery_keep_checkpoints 2), no resume point
        files = sorted(p.name for p in (run_dir / "elf" / f"round_{k:02d}").iterdir())
        assert files == ["latest0", "latest1", "save-12.bin", "save-8.bin"], files
    assert os.readlink(run_dir / "elf" / "round_00" / "latest0") == "save-12.bin"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("elf_done") / "wt"
    cmd = lottery(run_dir, "--lottery_reset", "init", epochs=1, batches=3)
    p = run_python(cmd, timeout=300, **TINY_MODEL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return dict(dir=run_dir, cmd=cmd)


@pytest.mark.parametrize("extra", [[], ["--save_prefix", "other", "--tqdm", "--torch_threads", "2"]])
def test_a_finished_run_leaves_before_starting_its_games(finished, extra):
    """Rerun with the same settings (or with settings that cannot change results): nothing to do, no emulator."""
    before = {p: p.stat().st_mtime_ns for p in finished["dir"].rglob("*") if p.is_file()}
    p = run_python(finished["cmd"] + extra, timeout=120, **TINY_MODEL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"all 1 rounds of {finished['dir']} are done" in p.stdout
    assert not any(s in p.stdout for s in GAME_STARTED)
    assert {p: p.stat().st_mtime_ns for p in finished["dir"].rglob("*") if p.is_file()} == before


def test_each_elf_seed_follows_the_other_when_only_one_is_given():
    from elf_ext.flags import resolve_seeds

    assert [resolve_seeds(*s) for s in ((None, None), (None, 3), (2, None), (2, 5))] == [(0, 0), (3, 3), (2, 2),
                                                                                          (2, 5)]


def test_a_run_seed_equal_to_the_lottery_seed_is_the_same_run_and_another_is_not(finished):
    """The finished run gave no seed (both 0): `--seed 0` names the same run, `--seed 5` another one."""
    same = run_python(finished["cmd"] + ["--seed", "0"], timeout=120, **TINY_MODEL)
    assert same.returncode == 0 and "are done" in same.stdout, same.stdout[-2000:] + same.stderr[-2000:]
    other = run_python(finished["cmd"] + ["--seed", "5", "--lottery_seed", "0"], timeout=120, **TINY_MODEL)
    assert other.returncode == 2 and "settings.seed" in other.stderr, other.stdout[-2000:] + other.stderr[-2000:]


@pytest.mark.parametrize("flag,value", [("grad_clip_norm", "5"), ("frame_skip", "2")])
def test_every_flag_that_can_change_training_identifies_the_run(finished, flag, value):
    p = run_python(finished["cmd"] + [f"--{flag}", value], timeout=120, **TINY_MODEL)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "holds a different configuration" in p.stderr and f"settings.{flag}" in p.stderr, p.stderr[-2000:]


def test_stored_settings_are_every_elf_flag_but_the_deny_list(finished):
    import json

    from elf_ext.flags import NOT_TRAINING

    settings = json.loads((finished["dir"] / "config.json").read_text())["settings"]
    assert {"grad_clip_norm", "load", "opt_method", "reward_clip", "keys_in_reply", "lottery_epochs",
            "lottery_epoch_batches", "lottery_last_games", "model", "parameter_shapes"} <= set(settings)
    assert not set(NOT_TRAINING) & set(settings)
    assert not [k for k in settings if k in ("lottery_rate", "lottery_seed", "lottery_ticket")]
    assert settings["reward_clip"] == 1 and settings["rom_file"] == "breakout.bin"


def test_a_run_of_the_allow_list_adapter_is_refused_by_name(finished, tmp_path):
    """A run directory whose settings are the old allow-list (and whose ticket rewards were clipped sums)."""
    import json

    old = tmp_path / "old"
    old.mkdir()
    config = json.loads((finished["dir"] / "config.json").read_text())
    keep = ("rom_file", "num_games", "batchsize", "T", "hist_len", "reward_clip", "lr", "model", "parameter_shapes")
    config["settings"] = {k: v for k, v in config["settings"].items() if k in keep}
    (old / "config.json").write_text(json.dumps(config))
    p = run_python(lottery(old, "--lottery_reset", "init", epochs=1, batches=3), timeout=120, **TINY_MODEL)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "earlier ELF adapter" in p.stderr and "clipped" in p.stderr and "new run directory" in p.stderr
    assert sorted(x.name for x in old.iterdir()) == ["config.json"]
    assert not any(s in p.stdout for s in GAME_STARTED)


@pytest.mark.parametrize("flags", [["--lottery_rounds", "3"], ["--lottery_rate=0.3", "--lottery_seed", "1"]])
def test_lottery_flags_without_lottery_prune_are_refused(tmp_path, flags):
    p = run_python(["-m", "elf_ext.train", "--rom_file", "breakout.bin", "--save_dir", tmp_path, *flags],
                   timeout=120)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "without --lottery_prune" in p.stderr and flags[0].split("=")[0] in p.stderr
    assert not any(s in p.stdout for s in GAME_STARTED) and not list(tmp_path.iterdir())


def test_torch_uses_every_core_once_openmp_threads_sleep():
    """The command `python -m elf_ext.train` sets OMP_WAIT_POLICY=PASSIVE before torch loads and then gives torch
    every core; importing the module (as `lth sweep` does) changes no environment and keeps one thread."""
    report = "print(os.environ.get('OMP_WAIT_POLICY'), t.OPENMP_THREADS_SLEEP, t.torch_threads(0), t.torch_threads(3))"
    command = ("import os, runpy, sys\nsys.argv = ['elf_ext.train', '--help']\ntry:\n"
               "    runpy.run_module('elf_ext.train', run_name='__main__')\nexcept SystemExit:\n    pass\n"
               "import elf_ext.train as t\n" + report)
    cores = len(os.sched_getaffinity(0))
    env = {k: v for k, v in subprocess_env().items() if k != "OMP_WAIT_POLICY"}
    imported = subprocess.run([sys.executable, "-c", "import os; import elf_ext.train as t; " + report],
                              capture_output=True, text=True, env=env)
    ran = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, env=env)
    assert imported.stdout.split() == ["None", "False", "1", "3"], imported.stderr
    assert ran.stdout.split()[-4:] == ["PASSIVE", "True", str(cores), "3"], ran.stderr


def test_an_ablation_reuses_the_dense_round_of_its_seed(finished, tmp_path):
    """--lottery_dense_from: a one-shot ablation takes round 0 (record, snapshots) from the finished run instead
    of training it again, and trains its pruned round; a source trained with other settings is refused."""
    ablation = tmp_path / "oneshot"
    cmd = lottery(ablation, "--lottery_reset", "init", "--lottery_schedule", "oneshot",
                  "--lottery_dense_from", finished["dir"], epochs=1, batches=3)
    p = run_python(cmd, timeout=300, **TINY_MODEL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    mine, theirs = read_metrics(ablation, 0), read_metrics(finished["dir"], 0)
    assert mine["dense_from"] == str(finished["dir"]) and mine["metrics"] == theirs["metrics"]
    assert read_metrics(ablation, 1)["metrics"]["updates"] == 3
    log = (ablation / "train.log").read_text()
    assert "round 0]" not in log and log.count("round 1] epoch 1/1") == 1
    assert not (ablation / "elf" / "round_00").exists()

    other = tmp_path / "other_lr"
    p = run_python(lottery(other, "--lottery_reset", "init", "--lottery_schedule", "oneshot", "--lr", "0.01",
                           "--lottery_dense_from", finished["dir"], epochs=1, batches=3), timeout=300, **TINY_MODEL)
    assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
    assert "trained its dense round with other settings" in p.stderr and "settings.lr" in p.stderr
    assert not other.exists()
