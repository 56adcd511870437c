"""Lottery tickets in your own PyTorch training loop, with the public API of lth_plugins and nothing else.

An MLP learns generated labels. Three rounds of global magnitude pruning at rate 0.5; each ticket is reset to its
weights after epoch 1 (late resetting) and trains epochs 2..4 with a fresh optimizer, as the dense round did.
The core checks the round's rules (first update, fresh optimizer, the end of the schedule) as the loop reports.
Rerunning the command continues a killed run.

    python examples/own_loop.py [RUN_DIR]
"""
import sys
import tempfile

import torch
from torch import nn

from lth_plugins.hparams import LotteryConfig
from lth_plugins.run import LotteryRun
from lth_plugins.status import status_table

EPOCHS, BATCH, DIM, CLASSES = 4, 64, 16, 4


def make_data(n: int = 2048, seed: int = 0):
    """Inputs labelled by a random linear teacher; half for training, half for testing."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, DIM, generator=g)
    y = (x @ torch.randn(DIM, CLASSES, generator=g)).argmax(1)
    return (x[: n // 2], y[: n // 2]), (x[n // 2:], y[n // 2:])


def main(run_dir) -> str:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, CLASSES))
    (xtr, ytr), (xte, yte) = make_data()
    per_epoch = -(-len(xtr) // BATCH)
    config = LotteryConfig(rounds=3, rate=0.5, reset="late", late_reset="1ep", seed=0)
    with LotteryRun(config, run_dir, task="own-loop", framework="torch", settings={"epochs": EPOCHS},
                    total_updates=EPOCHS * per_epoch, total_epochs=EPOCHS, model=model) as run:
        for k in run.pending_rounds():
            with run.round(k, model, optimizer=lambda: torch.optim.Adam(model.parameters(), lr=1e-2)) as r:
                update = r.start.update  # a late-reset ticket continues from the snapshot's update j
                for epoch in range(r.start.epoch + 1, EPOCHS + 1):
                    order = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(epoch))
                    for i in range(0, len(xtr), BATCH):
                        idx = order[i:i + BATCH]
                        r.optimizer.zero_grad()
                        nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
                        r.optimizer.step()
                        update += 1
                        r.after_update(update, epoch=epoch - 1)
                    r.after_epoch(epoch)
                with torch.no_grad():
                    accuracy = (model(xte).argmax(1) == yte).float().mean().item()
                r.finish({"accuracy": accuracy}, primary="accuracy", higher_is_better=True)
    return status_table([run_dir])


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="own_loop_")))
