"""Translation: 3 rounds of winning and random tickets, plain fairseq-generate on a round checkpoint,
SIGKILL during round 2 then rerun equals the uninterrupted run, Ctrl-C ends a run with one line and the same
command resumes it."""
import os
import re
import shlex
import signal
import subprocess
import time

import torch

from .conftest import GEN_ARGS, WT_ARGS
from .helpers import (BIN, COMMON, MT_MODEL, USER_DIR, env, fairseq_train, fairseq_train_popen, load_ckpt,
                      load_mask, metrics)


def test_winning_ticket_three_rounds(mt_winning):
    save, log = mt_winning
    fractions = []
    for k in range(4):
        rec = metrics(save, k)
        m = rec["metrics"]
        assert rec["primary"] == "bleu" and rec["ticket"] == "winning"
        for key in ("bleu", "valid_loss", "valid_ppl", "best_valid_loss", "best_valid_ppl"):
            assert isinstance(m[key], float), (k, key, m)
        assert m["num_updates"] == 40 and m["bleu_sentences"] > 90  # what fairseq-generate translates
        assert m["generate_command"].endswith("--beam 2 --max-len-a 1.2 --max-len-b 10")
        assert m["best_valid_loss"] <= m["valid_loss"]
        fractions.append(rec["fraction_pruned"])
        assert (save / f"round_{k:02d}" / "checkpoint_last.pt").is_file()
    assert fractions[0] == 0.0
    for k, f in enumerate(fractions):
        assert abs(f - (1 - 0.8 ** k)) < 1e-3
    assert (save / "snapshots" / "late.pt").is_file()
    # masked weights are exactly zero in every checkpoint, which plain torch (weights_only) loads
    for k in (1, 2, 3):
        mask = load_mask(save, k)
        for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
            state = load_ckpt(save / f"round_{k:02d}" / name)["model"]
            for n, m in mask.items():
                assert torch.all(state[n][~m] == 0), (k, name, n)
            assert sum(int((state[n] != 0).sum()) for n in mask) <= mask.num_surviving()
    # iterative: masks are nested
    for k in (1, 2):
        a, b = load_mask(save, k), load_mask(save, k + 1)
        assert all(bool((b[n] <= a[n]).all()) for n in a)
    # the round checkpoint starts from the late snapshot (winning ticket): round 1's first saved state
    # is not the init; the late snapshot differs from init
    init = torch.load(save / "snapshots" / "init.pt", weights_only=True)
    late = torch.load(save / "snapshots" / "late.pt", weights_only=True)
    assert any(not torch.equal(init[k], late[k]) for k in init if init[k].is_floating_point())


def test_recorded_fairseq_generate_command_reproduces_the_round_bleu(mt_winning):
    """The command each round records, run as plain fairseq-generate (no --user-dir, weights_only loading),
    prints the BLEU the round recorded."""
    save, _ = mt_winning
    e = env()
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in e
    for k in (0, 2):
        m = metrics(save, k)["metrics"]
        cmd = shlex.split(m["generate_command"])
        assert cmd[0] == "fairseq-generate" and "--user-dir" not in cmd
        assert cmd[cmd.index("--path") + 1] == str(save / f"round_{k:02d}" / "checkpoint_last.pt")
        proc = subprocess.run([str(BIN / "fairseq-generate"), *cmd[1:]], env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:]
        found = re.search(r"Generate test with beam=2: BLEU4 = ([\d.]+)", proc.stdout)
        assert found, proc.stdout[-3000:]
        assert float(found.group(1)) == m["bleu"], (k, found.group(0), m["bleu_result"])
        assert len(re.findall(r"^H-\d+\t", proc.stdout, re.M)) == m["bleu_sentences"]


def test_random_ticket_reuses_winning_masks(mt_winning, mt_data, tmp_path):
    wt, _ = mt_winning
    rt = tmp_path / "rt"
    fairseq_train(mt_data, rt, *MT_MODEL, "--max-update", "40", "--lottery-prune", "--lottery-rounds", "3",
                  "--lottery-ticket", "random", "--lottery-masks-from", str(wt), "--lottery-eval-bleu",
                  GEN_ARGS)
    assert not (rt / "round_00").exists()  # round 0 (dense) is shared with the winning ticket
    for k in (1, 2, 3):
        rec = metrics(rt, k)
        assert rec["ticket"] == "random" and isinstance(rec["metrics"]["bleu"], float)
        mask = load_mask(wt, k)
        state = load_ckpt(rt / f"round_{k:02d}" / "checkpoint_last.pt")["model"]
        for n, m in mask.items():
            assert torch.all(state[n][~m] == 0)
        assert abs(rec["fraction_pruned"] - metrics(wt, k)["fraction_pruned"]) < 1e-12
    # fresh init: the random ticket's trained weights are not the winning ticket's
    a = load_ckpt(rt / "round_01" / "checkpoint_last.pt")["model"]
    b = load_ckpt(wt / "round_01" / "checkpoint_last.pt")["model"]
    assert not torch.equal(a["encoder.layers.0.fc1.weight"], b["encoder.layers.0.fc1.weight"])


def test_ctrl_c_ends_the_run_with_one_line_and_the_same_command_resumes_it(mt_data, tmp_path):
    save, log = tmp_path / "interrupted", tmp_path / "first.log"
    args = [*MT_MODEL, *WT_ARGS, "--lottery-rounds", "1"]  # interrupted in its last round
    cmd = [str(BIN / "fairseq-train"), str(mt_data), "--save-dir", str(save), *COMMON, *args, "--user-dir", USER_DIR]
    with open(log, "w") as out:  # Ctrl-C reaches the terminal's whole process group, with SIGINT's default action
        proc = subprocess.Popen(cmd, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    target = save / "round_01" / "checkpoint_last.pt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before round 1 checkpointed: " + log.read_text()[-2000:]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    text = log.read_text()
    assert "fairseq-train: interrupted; the same command resumes the run" in text and "Traceback" not in text, \
        text[-3000:]
    again = fairseq_train(mt_data, save, *args).stdout
    assert "round 0/1 start" not in again and "(resumed at update" in again and metrics(save, 1)["round"] == 1, \
        again[-3000:]


def test_sigkill_during_round_2_then_rerun_equals_uninterrupted(mt_winning, mt_data, tmp_path):
    ref, _ = mt_winning
    save = tmp_path / "killed"
    args = [*MT_MODEL, *WT_ARGS]
    proc = fairseq_train_popen(mt_data, save, *args, log=tmp_path / "first.log")
    target = save / "round_02" / "checkpoint_last.pt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, ("the run ended before round 2 checkpointed: "
                                 + (tmp_path / "first.log").read_text()[-2000:])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (save / "round_02" / "metrics.json").exists()
    assert (save / "round_01" / "metrics.json").exists()
    r1_metrics = (save / "round_01" / "metrics.json").read_bytes()
    out = fairseq_train(mt_data, save, *args).stdout
    assert re.search(r"\(resumed at update \d+\)", out)  # round 2 continued from its checkpoint_last.pt
    assert "round 0/3 start" not in out and "round 1/3 start" not in out  # finished rounds not recomputed
    assert (save / "round_01" / "metrics.json").read_bytes() == r1_metrics
    # the resumed round continued the same count: updates 11..40 of the dense schedule, 30 optimizer steps
    rec = metrics(save, 2)
    assert rec["start"]["update"] == 10 and rec["end_update"] == 40
    assert rec["training"]["optimizer_steps"] == 30 and rec["training"]["first_update"] == 11
    for k in (1, 2, 3):
        a, b = load_mask(ref, k), load_mask(save, k)
        assert a.checksum() == b.checksum(), k
    fa = load_ckpt(ref / "round_03" / "checkpoint_last.pt")["model"]
    fb = load_ckpt(save / "round_03" / "checkpoint_last.pt")["model"]
    assert all(torch.equal(fa[n], fb[n]) for n in fa)
    # rerunning a finished experiment trains nothing
    again = fairseq_train(mt_data, save, *args).stdout
    assert "start:" not in again


def test_masks_snapshots_and_round_counter_survive_fairseq_reset_flags(mt_data, tmp_path):
    """Extending a finished run with every --reset-* flag: nothing of the lottery state is lost or redone."""
    save = tmp_path / "wt"
    args = [*MT_MODEL, "--max-update", "20", "--lottery-prune", "--lottery-reset", "late",
            "--lottery-late-reset", "5u"]
    fairseq_train(mt_data, save, *args, "--lottery-rounds", "1")
    before = {p.relative_to(save): p.read_bytes() for p in save.rglob("*")
              if p.is_file() and p.suffix in (".lthm", ".json") and p.name != "config.json"
              or p.parent.name == "snapshots"}
    log = fairseq_train(mt_data, save, *args, "--lottery-rounds", "2", "--reset-optimizer", "--reset-dataloader",
                        "--reset-meters", "--reset-lr-scheduler").stdout
    for rel, data in before.items():  # rounds 0 and 1, their masks and the snapshots are untouched
        assert (save / rel).read_bytes() == data, rel
    assert "round 0/2 start" not in log and "round 1/2 start" not in log and "round 2/2 start" in log
    assert metrics(save, 2)["round"] == 2 and abs(load_mask(save, 2).density() - 0.64) < 1e-3
