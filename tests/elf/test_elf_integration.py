"""The ELF adapter on the real ELF: a tiny Breakout lottery run (WT and RT), a kill during round 2 and the
rerun, bad input and a crash inside ELF's trainer.

Tiny settings (8 games, batch 4, 2 epochs of 3 training batches, rounds 0-2): a few seconds per round.
ELF's games run asynchronously, so rewards and trained weights differ between runs; masks, survivor
counts, snapshots and files do not.
"""
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .helpers import PROBE, REPO, read_events, require_elf, run_python, subprocess_env

require_elf(game=True)

from lth_plugins.hparams import survivors  # noqa: E402
from lth_plugins.masks import Mask  # noqa: E402

TINY = ["--rom_file", "breakout.bin", "--num_games", "8", "--batchsize", "4", "--T", "6",
        "--lottery_epochs", "2", "--lottery_epoch_batches", "3", "--lottery_last_games", "8",
        "--lottery_rounds", "2", "--lottery_late_reset", "1ep", "--lottery_seed", "0", "--torch_threads", "1"]
N_PARAMS = 1_444_357  # the paper's network for Breakout (4 actions)


def _probe_cmd(out, flags):
    return [str(PROBE), str(out), "--", *TINY, "--lottery_prune", *flags]


def _digest(run_dir, rounds):
    files = ["config.json", "snapshots/init.pt", "snapshots/late.pt"]
    for k in rounds:
        files += [f"round_{k:02d}/{f}" for f in ("metrics.json", "sparsity.json")]
        files += [f"round_{j:02d}/mask.lthm" for j in (k, k + 1) if j > 0]  # round 0's mask is all ones
    return {f: hashlib.sha256((run_dir / f).read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def wt(tmp_path_factory):
    """A winning-ticket run killed during round 2, then rerun to the end with the same command."""
    tmp = tmp_path_factory.mktemp("elf")
    run_dir, probe = tmp / "wt", tmp / "wt_probe.jsonl"
    cmd = [sys.executable, *_probe_cmd(probe, ["--lottery_run_dir", str(run_dir)])]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(), cwd=REPO)
    lines, deadline = [], time.monotonic() + 300
    try:
        for line in p.stdout:
            lines.append(line)
            if "round 2/2 start" in line or time.monotonic() > deadline:
                break
        assert any("round 2/2 start" in x for x in lines), "".join(lines)[-4000:]
        before = _digest(run_dir, [0, 1])
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    assert not (run_dir / "round_02" / "metrics.json").exists()
    rerun = run_python(_probe_cmd(probe, ["--lottery_run_dir", str(run_dir)]))
    return dict(dir=run_dir, probe=probe, before=before, rerun=rerun, tmp=tmp, first="".join(lines))


def test_kill_during_round_2_and_rerun_continues(wt):
    assert wt["rerun"].returncode == 0, wt["rerun"].stdout[-3000:] + wt["rerun"].stderr[-3000:]
    assert _digest(wt["dir"], [0, 1]) == wt["before"]  # rounds 0-1 untouched, byte for byte
    starts = [e["round"] for e in read_events(wt["probe"]) if e["event"] == "start"]
    # the rerun starts at round 2 (the killed run may die before its probe records round 2's start)
    assert starts[:2] == [0, 1] and set(starts[2:]) == {2} and starts.count(0) == starts.count(1) == 1
    log = (wt["dir"] / "train.log").read_text()
    assert log.count("round 0] epoch 2/2") == 1 and log.count("round 2] epoch 2/2") == 1


def test_masks_survivors_snapshots(wt):
    d = wt["dir"]
    assert (d / "snapshots" / "init.pt").is_file() and (d / "snapshots" / "late.pt").is_file()
    for k in range(3):
        m = json.loads((d / f"round_{k:02d}" / "metrics.json").read_text())
        assert m["selected"] == N_PARAMS
        assert m["surviving"] == survivors(N_PARAMS, 0.2, k)
        assert m["metrics"]["start_update"] + m["metrics"]["updates"] == 6 and m["metrics"]["steps"] > 0
        # rounds 1-2 continue from the late-reset point (update 3, after epoch 1) to update 6
        assert m["metrics"]["start_update"] == (3 if k else 0) and len(m["curve"]) == (1 if k else 2)
        mask = Mask.load(d / f"round_{k:02d}" / "mask.lthm") if k else None
        # ELF's own checkpoint of the round (ModelSaver) holds zeros at every pruned entry; by default only the
        # round's final checkpoint stays (its resume point goes once the round is recorded)
        elf_dir = d / "elf" / f"round_{k:02d}"
        assert sorted(p.name for p in elf_dir.iterdir()) == ["latest0", "save-6.bin"]
        ckpt = torch.load(elf_dir / "latest0", weights_only=False)
        assert ckpt["step"] == 6
        if mask is not None:
            assert mask.num_surviving() == survivors(N_PARAMS, 0.2, k)
            for n, keep in mask.items():
                assert not ckpt["stats_dict"][n][~keep].any(), n
    events = read_events(wt["probe"])
    for e in events:
        if e["event"] == "epoch":
            assert e["model_pruned_nonzero"] == 0 and e["actor_pruned_nonzero"] == 0, e
            assert e["actor_is_copy"] and e["actor_equals_model"], e
        elif e["event"] == "start" and e["round"] > 0:  # from the late snapshot (after epoch 1 of round 0)
            assert e["pruned_nonzero"] == 0 and e["actor_pruned_nonzero"] == 0 and e["max_diff_to_late"] == 0.0, e
            assert e["surviving"] == survivors(N_PARAMS, 0.2, e["round"])


def test_random_ticket_uses_the_winning_masks_with_new_weights(wt):
    rt, probe = wt["tmp"] / "rt", wt["tmp"] / "rt_probe.jsonl"
    p = run_python(_probe_cmd(probe, ["--lottery_ticket", "random", "--lottery_masks_from", str(wt["dir"]),
                                "--lottery_run_dir", str(rt)]))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert not (rt / "round_00").exists()
    for k in (1, 2):
        m = json.loads((rt / f"round_{k:02d}" / "metrics.json").read_text())
        assert m["ticket"] == "random" and m["surviving"] == survivors(N_PARAMS, 0.2, k)
        mask = Mask.load(wt["dir"] / f"round_{k:02d}" / "mask.lthm")
        ckpt = torch.load(rt / "elf" / f"round_{k:02d}" / "latest0", weights_only=False)
        for n, keep in mask.items():  # the winning ticket's masks hold in the random ticket's model
            assert not ckpt["stats_dict"][n][~keep].any(), n
    starts = [e for e in read_events(probe) if e["event"] == "start"]
    assert [e["round"] for e in starts] == [1, 2]
    for e in starts:  # the winning masks, weights re-drawn: far from the late snapshot, zeros where pruned
        assert e["pruned_nonzero"] == 0 and e["max_diff_to_late"] > 0.01
    assert all(e["actor_pruned_nonzero"] == 0 for e in read_events(probe) if e["event"] == "epoch")
    status = subprocess.run([str(Path(sys.executable).with_name("lth")), "status", str(wt["dir"]), str(rt)],
                            capture_output=True, text=True)
    assert status.returncode == 0, status.stderr


def test_masks_from_another_network_is_refused(wt):
    rt = wt["tmp"] / "rt_bad"
    p = run_python(["-m", "elf_ext.train", *TINY, "--hist_len", "2", "--lottery_prune", "--lottery_ticket", "random",
              "--lottery_masks_from", str(wt["dir"]), "--lottery_run_dir", str(rt)])
    assert p.returncode == 2, p.stderr[-3000:]
    assert "must train as the winning run" in p.stderr and "hist_len" in p.stderr
    assert not rt.exists()


def test_a_masks_from_folder_inside_the_run_is_refused_with_the_flag_as_elf_spells_it(wt):
    rt, inside = wt["tmp"] / "rt_inside", wt["dir"] / "round_01"
    p = run_python(["-m", "elf_ext.train", *TINY, "--lottery_prune", "--lottery_ticket", "random",
                    "--lottery_masks_from", str(inside), "--lottery_run_dir", str(rt)])
    assert p.returncode == 2, p.stderr[-3000:]
    assert (f"the winning-ticket run (masks_from, --lottery_masks_from) {inside} is a folder inside the run "
            f"{wt['dir']}, not a run directory: give {wt['dir']}") in p.stderr, p.stderr[-3000:]
    assert "--lottery-" not in p.stderr and not rt.exists()


@pytest.mark.parametrize("flags,message", [
    (["--rom_file", "no_such_game.bin"], "unknown ROM 'no_such_game.bin'"),
    (["--lottery_late_reset", "2ep"], "late reset point 2ep lies beyond"),
    (["--lottery_late_reset", "7u"], "late reset point 7u lies beyond"),
    # a refused lottery value names its flag as ELF spells it, as fairseq-train and FLARE name theirs
    (["--lottery_rate", "1.5"],
     "error: argument --lottery_rate: prune rate must lie strictly between 0 and 1, got 1.5"),
    (["--lottery_mask_wait", "-1"], "error: argument --lottery_mask_wait: mask_wait must be a number of seconds"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, flags, message):
    run_dir = tmp_path / "run"
    p = run_python(["-m", "elf_ext.train", *TINY, "--lottery_prune", "--lottery_run_dir", str(run_dir), *flags],
             timeout=120)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert message in p.stderr
    assert not run_dir.exists()


def test_crash_in_elf_trainer_ends_the_run_with_an_error(tmp_path):
    """A model whose 3rd training forward raises: nonzero exit and the error, no hang, the run resumable."""
    (tmp_path / "crashing_model.py").write_text(
        "from elf_ext.network import LotteryAtariNet\nfrom elf_ext.method import ActorCriticClipped\n"
        "from elf_ext.flags import PAPER_DEFAULTS\n"
        "class Crashing(LotteryAtariNet):\n"
        "    calls = 0\n"
        "    def forward(self, x):\n"
        "        if not self.volatile:\n"
        "            Crashing.calls += 1\n"
        "            if Crashing.calls == 12:\n"
        "                raise RuntimeError('boom in the trainer')\n"
        "        return super().forward(x)\n"
        "Models = {'crashing': [Crashing, ActorCriticClipped]}\nDefaults = dict(PAPER_DEFAULTS)\n")
    run_dir = tmp_path / "run"
    p = run_python(["-m", "elf_ext.train", *TINY, "--lottery_prune", "--lottery_run_dir", str(run_dir)], timeout=180,
             model_file=str(tmp_path / "crashing_model"), model="crashing")
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]
    assert "boom in the trainer" in p.stderr and "the ELF run failed" in p.stderr
    assert not (run_dir / "round_00" / "metrics.json").exists()


def test_plain_elf_training_without_lottery_prune(tmp_path):
    p = run_python(["-m", "elf_ext.train", "--rom_file", "breakout.bin", "--num_games", "8", "--batchsize", "4",
              "--num_minibatch", "12", "--num_episode", "1", "--save_dir", str(tmp_path)], timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    saved = list(tmp_path.glob("save-*.bin"))
    assert saved and not (tmp_path / "config.json").exists()
