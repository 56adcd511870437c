"""Four CPU ranks under fairseq's own DDP (gloo), launched as a cluster launcher does (one process per rank,
--distributed-no-spawn): identical masks on every rank, only rank 0 writes, one late snapshot; a killed rank
stops the others (naming it) and the same launch resumes to the same bits as an uninterrupted run; rank 0's round
evaluation may outlast the collectives' timeout; a refusal every rank reaches is said once."""
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from .helpers import BIN, COMMON, MT_MODEL, USER_DIR, env, load_ckpt, load_mask, metrics

WORLD = 4
LOTTERY = ["--max-update", "16", "--save-interval-updates", "4", "--lottery-prune", "--lottery-rounds", "2",
           "--lottery-late-reset", "4u"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(data, save, logs, world=WORLD, extra=(), extra_env=None):
    port = _free_port()
    procs = []
    for rank in range(world):
        cmd = [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save), *COMMON, *MT_MODEL,
               "--user-dir", USER_DIR, *LOTTERY, "--distributed-world-size", str(world),
               "--distributed-backend", "gloo", "--distributed-init-method", f"tcp://127.0.0.1:{port}",
               "--distributed-rank", str(rank), "--distributed-no-spawn", "--ddp-backend", "legacy_ddp", *extra]
        out = open(logs / f"rank{rank}.log", "w")
        procs.append(subprocess.Popen(cmd, env=dict(env(), **(extra_env or {})), stdout=out,
                                      stderr=subprocess.STDOUT))
        out.close()
    return procs


def outputs(logs, world=WORLD):
    return [(logs / f"rank{r}.log").read_text() for r in range(world)]


def final_state(save):
    return load_ckpt(save / "round_02" / "checkpoint_last.pt")["model"]


@pytest.fixture(scope="module")
def uninterrupted(mt_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp4")
    save = tmp / "run"
    procs = launch(mt_data, save, tmp)
    for p in procs:
        p.wait(timeout=900)
    outs = outputs(tmp)
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank}:\n{out[-4000:]}"
    return save, outs


def test_four_gloo_ranks_hold_identical_masks_and_only_rank_0_writes(uninterrupted):
    save, outs = uninterrupted
    sums = [dict(re.findall(r"round (\d+) mask checksum ([0-9a-f]+) \(rank " + str(r), out))
            for r, out in enumerate(outs)]
    assert set(sums[0]) == {"0", "1", "2"} and all(s == sums[0] for s in sums)
    for k in (1, 2):
        assert load_mask(save, k).checksum() == sums[0][str(k)]
        assert metrics(save, k)["fraction_pruned"] > 0
        state = load_ckpt(save / f"round_{k:02d}" / "checkpoint_last.pt")["model"]
        for n, m in load_mask(save, k).items():
            assert torch.all(state[n][~m] == 0)
    # progress, the late snapshot and the store belong to rank 0
    assert sum(out.count("late-reset snapshot taken") for out in outs) == 1
    assert "round 1/2 start" in outs[0] and not any("round 1/2 start" in out for out in outs[1:])


def test_a_rerun_that_every_rank_refuses_is_said_once_and_changes_nothing(mt_data, uninterrupted, tmp_path):
    save, _ = uninterrupted
    files = lambda: {p: p.stat().st_mtime_ns for p in save.rglob("*") if p.name != ".lock"}  # noqa: E731
    before = files()
    procs = launch(mt_data, save, tmp_path, world=2, extra=["--lottery-rate", "0.3"])  # the rank layout may change
    for p in procs:
        p.wait(timeout=300)
    said = "".join(outputs(tmp_path, 2))
    assert [p.returncode for p in procs] == [2, 2], said[-4000:]
    assert said.count("fairseq-train: lottery error") == 1 and "lottery.rate" in said, said[-4000:]
    assert files() == before


def test_each_distinct_refusal_of_the_ranks_is_one_line_naming_its_ranks_unless_all_gave_it():
    from fairseq_ext.distributed import refusal_lines

    assert refusal_lines(["no test split", "no test split"]) == ["fairseq-train: lottery error: no test split"]
    assert refusal_lines([None, "a", "b", "a"]) == ["fairseq-train: lottery error (ranks 1, 3): a",
                                                   "fairseq-train: lottery error (rank 2): b"]


def test_killed_rank_stops_the_others_and_the_same_launch_resumes_bit_identically(mt_data, tmp_path,
                                                                                  uninterrupted):
    save = tmp_path / "run"
    procs = launch(mt_data, save, tmp_path)
    deadline = time.time() + 600
    while not (save / "round_01" / "checkpoint_last.pt").is_file():  # in the middle of round 1
        assert time.time() < deadline and all(p.poll() is None for p in procs), outputs(tmp_path)[0][-3000:]
        time.sleep(0.1)
    procs[2].send_signal(signal.SIGKILL)
    killed = time.time()
    for rank in (0, 1, 3):
        procs[rank].wait(timeout=max(1, 60 - (time.time() - killed)))
        assert procs[rank].returncode != 0
    assert time.time() - killed < 60
    outs = outputs(tmp_path)
    for rank in (0, 1, 3):
        assert "rank 2" in outs[rank], f"rank {rank}:\n{outs[rank][-3000:]}"
    assert not (save / "round_02" / "metrics.json").exists()

    logs = tmp_path / "resume"
    logs.mkdir()
    procs = launch(mt_data, save, logs)
    for rank, p in enumerate(procs):
        p.wait(timeout=900)
        assert p.returncode == 0, f"rank {rank}:\n{outputs(logs)[rank][-4000:]}"
    base, _ = uninterrupted
    resumed, expected = final_state(save), final_state(base)
    assert resumed.keys() == expected.keys()
    for n in expected:
        assert torch.equal(resumed[n], expected[n]), n
    for k in (0, 1, 2):
        assert metrics(save, k)["metrics"] == metrics(base, k)["metrics"]
    for k in (1, 2):
        assert load_mask(save, k).checksum() == load_mask(base, k).checksum()


SLOW_GENERATE = Path(__file__).resolve().parent / "slow_generate"


def test_rank_0_evaluating_longer_than_the_collective_timeout_does_not_end_the_run(mt_data, tmp_path):
    """Rank 0 scores round 0 for over 30 s (its fairseq-generate made slow) while every collective of the run times
    out after 10 s and fairseq's --heartbeat-timeout is 10 s: the other rank waits for it outside any collective,
    and the run finishes."""
    save = tmp_path / "run"
    slow_s, timeout_s = 30, 10
    procs = launch(mt_data, save, tmp_path, world=2, extra_env={"LTH_SLOW_GENERATE_S": str(slow_s)},
                   extra=["--lottery-rounds", "1", "--lottery-eval-bleu",
                          f"--lottery-generate-args=--user-dir {SLOW_GENERATE} --beam 2 --max-len-a 1.2 --max-len-b 10",
                          "--lottery-collective-timeout", str(timeout_s), "--heartbeat-timeout", str(timeout_s)])
    for rank, p in enumerate(procs):
        p.wait(timeout=900)
        assert p.returncode == 0, f"rank {rank}:\n{outputs(tmp_path, 2)[rank][-4000:]}"
    round0 = save / "round_00"
    evaluation_s = (round0 / "generate" / "generate-test.txt").stat().st_mtime - \
        (round0 / "checkpoint_last.pt").stat().st_mtime
    assert evaluation_s > slow_s > timeout_s
    for k in (0, 1):
        m = metrics(save, k)["metrics"]
        # the round's BLEU is the one its (slowed) fairseq-generate printed for all the test sentences
        printed = (save / f"round_{k:02d}" / "generate" / "generate-test.txt").read_text()
        assert m["bleu_result"] in printed and m["bleu_sentences"] > 0
