"""Two CPU ranks under fairseq's own DDP (gloo): identical masks on both ranks, only rank 0 writes."""
import re
import socket
import subprocess

import torch

from .helpers import BIN, COMMON, MT_MODEL, USER_DIR, env, load_ckpt, load_mask, metrics


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_hold_identical_masks(mt_data, tmp_path):
    save = tmp_path / "ddp"
    port = _free_port()
    procs = []
    for rank in (0, 1):
        cmd = [str(BIN / "fairseq-train"), str(mt_data), "--save-dir", str(save), *COMMON, *MT_MODEL,
               "--user-dir", USER_DIR, "--max-update", "20", "--lottery-prune", "--lottery-rounds", "2",
               "--lottery-late-reset", "5u", "--distributed-world-size", "2", "--distributed-backend", "gloo",
               "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-rank", str(rank),
               "--distributed-no-spawn", "--ddp-backend", "legacy_ddp"]
        procs.append(subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank}:\n{out[-4000:]}"
    sums = [dict(re.findall(r"round (\d+) mask checksum ([0-9a-f]+) \(rank " + str(r), out)) for r, out in enumerate(outs)]
    assert set(sums[0]) == {"0", "1", "2"} and sums[0] == sums[1]
    for k in (1, 2):
        assert load_mask(save, k).checksum() == sums[0][str(k)]
        assert metrics(save, k)["fraction_pruned"] > 0
        state = load_ckpt(save / f"round_{k:02d}" / "checkpoint_last.pt")["model"]
        for n, m in load_mask(save, k).items():
            assert torch.all(state[n][~m] == 0)
    assert "round 1/2 start" not in outs[1]  # progress and the store belong to rank 0
