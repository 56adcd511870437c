"""One rank of a gloo group for tests/test_peers.py: python peers_probe.py MODE RANK WORLD PORT RUN_DIR.
The watchdog beats every 0.5 s and gives up on a rank after 3 s, unless PROBE_DEFAULTS=1 (the real defaults)."""
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from lth_plugins.errors import LotteryError
from lth_plugins.hparams import LotteryConfig
from lth_plugins.peers import PeerWatchdog
from lth_plugins.run import LotteryRun

mode, rank, world, port, run_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
if mode == "late" and rank == 2:  # this rank starts its heartbeat long after the others' timeout
    time.sleep(8)
dog = PeerWatchdog.for_default_group(**({} if os.environ.get("PROBE_DEFAULTS") == "1"
                                        else {"interval": 0.5, "timeout": 3.0}))


def gather(s):
    out = [None] * world
    dist.all_gather_object(out, s)
    return out


if mode == "masks":  # rank 2 trained other weights: its round-1 mask differs
    torch.manual_seed(0 if rank != 2 else 1)
    model = torch.nn.Linear(16, 8)
    with LotteryRun(LotteryConfig(rounds=1, reset="init"), run_dir, task="t", framework="torch",
                    is_writer=rank == 0, progress=False) as run:
        r = run.open_round(0, model)
        dist.barrier()  # as training's all-reduces do: no rank records round 0 before every rank started it
        if rank == 2:  # "training" that went another way on this rank (every rank starts from the stored init)
            with torch.no_grad():
                model.weight.copy_(torch.randn(model.weight.shape, generator=torch.Generator().manual_seed(7)))
        r.finish({"m": 1.0}, primary="m", higher_is_better=True)
        run.open_round(1, model)
        try:
            run.check_consistent(1, gather)
        except LotteryError as e:
            print(f"rank {rank}: {e}", flush=True)
            dog.stop(finished=False)
            sys.exit(3)
elif mode.startswith("kill"):  # a rank dies (2, or the one named); the others are blocked in a collective
    if rank == int(mode[4:] or 2):
        time.sleep(1.5)
        os.kill(os.getpid(), 9)
    try:
        dist.barrier()
    except Exception:  # gloo noticed the closed connection: which rank? (as fairseq_ext.driver does)
        dog.wait_for_verdict()
        raise
elif mode == "pause":  # collectives until the test says stop (it pauses the whole job in between)
    print(f"rank {rank}: ready", flush=True)
    while True:
        go = torch.tensor([float(Path(run_dir, "stop").exists())])
        dist.all_reduce(go)  # every rank leaves the loop at the same iteration
        if go.item() > 0:
            break
        time.sleep(0.1)
elif mode == "late":
    dist.barrier()
dog.stop()
print(f"rank {rank}: finished", flush=True)
