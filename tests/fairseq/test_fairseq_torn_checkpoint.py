"""A torn checkpoint_last.pt (fairseq copies it in place; a kill mid-copy truncates it): the round resumes from the
newest whole checkpoint of its folder, says so in one line, and replaces the torn file by that checkpoint."""
import os
import re
import signal
import time

import torch

from fairseq_ext.checkpoints import NO_WHOLE_CHECKPOINT, resumable_checkpoint, torn

from .helpers import MT_MODEL, fairseq_train, fairseq_train_popen, load_ckpt, metrics

ARGS = [*MT_MODEL, "--max-update", "20", "--save-interval-updates", "5", "--lottery-prune", "--lottery-rounds", "1"]


def truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_a_torn_last_checkpoint_resumes_from_the_newest_whole_one(mt_data, tmp_path):
    save = tmp_path / "run"
    proc = fairseq_train_popen(mt_data, save, *ARGS, log=tmp_path / "first.log")
    round0 = save / "round_00"
    deadline = time.time() + 300
    while not list(round0.glob("checkpoint_*_10.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before update 10: " + (tmp_path / "first.log").read_text()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # killed while copying the newest checkpoint to checkpoint_last.pt
    saved = sorted(round0.glob("checkpoint_*_*.pt"), key=lambda p: int(re.findall(r"\d+", p.name)[-1]))
    newest = saved[-1]
    (round0 / "checkpoint_last.pt").write_bytes(newest.read_bytes())
    truncate(round0 / "checkpoint_last.pt")
    assert torn(round0 / "checkpoint_last.pt") is not None
    update = int(re.findall(r"\d+", newest.name)[-1])

    out = fairseq_train(mt_data, save, *ARGS).stdout
    line = [x for x in out.splitlines() if "is torn" in x]
    assert line == [f"[lottery] round 0: {round0 / 'checkpoint_last.pt'} is torn (it ends before its zip directory "
                    f"(File is not a zip file)): resuming from {newest.name}, the newest whole checkpoint (update "
                    f"{update})"], out[-3000:]
    rec = metrics(save, 0)
    assert rec["end_update"] == 20 and rec["training"]["optimizer_steps"] == 20
    assert metrics(save, 1)["end_update"] == 20
    assert load_ckpt(round0 / "checkpoint_last.pt")["optimizer_history"][-1]["num_updates"] == 20


def test_with_no_whole_checkpoint_the_round_starts_again(tmp_path):
    torch.save({"w": torch.zeros(100)}, tmp_path / "checkpoint_1_5.pt")
    truncate(tmp_path / "checkpoint_1_5.pt")
    torch.save({"w": torch.ones(100)}, tmp_path / "checkpoint_last.pt")
    assert resumable_checkpoint(tmp_path / "checkpoint_last.pt", repair=True) == (
        str(tmp_path / "checkpoint_last.pt"), None)  # a whole checkpoint_last.pt is used as it is
    truncate(tmp_path / "checkpoint_last.pt", keep=0)
    path, line = resumable_checkpoint(tmp_path / "checkpoint_last.pt", repair=True)
    assert path == str(tmp_path / NO_WHOLE_CHECKPOINT) and not os.path.exists(path)
    assert line == (f"{tmp_path / 'checkpoint_last.pt'} is torn (it is empty) and no other checkpoint of the round "
                    f"is whole: the round starts again")
