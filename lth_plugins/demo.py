"""A small, real lottery experiment on plain torch: an MLP learning a teacher network's labels (`lth demo-core`,
sweep framework "torch"). One ticket, resumable like every adapter's command:

    python -m lth_plugins.demo --run-dir DIR [--seed 0] [--epochs 4] [--n-train 4096] [--lottery-* flags]
"""
import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from .hparams import LotteryConfig, Ticket
from .round import Round
from .run import LotteryRun
from .seeds import mixed_seed


def make_data(seed: int = 0, n_train: int = 4096, n_test: int = 2048, dim: int = 32, classes: int = 8):
    """Inputs labelled by a fixed random teacher MLP: structured, learnable, hurt by heavy pruning."""
    g = torch.Generator().manual_seed(1234 + seed)
    teacher = [torch.randn(dim, 64, generator=g), torch.randn(64, classes, generator=g)]
    x = torch.randn(n_train + n_test, dim, generator=g)
    y = (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(1)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def make_model(seed: int, dim: int = 32, classes: int = 8, hidden: int = 128) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, classes))


def lr_at(update: int, lr: float = 1e-3, warmup: int = 8) -> float:
    """Learning rate of update number `update` (from 1): linear warmup, then inverse square root decay."""
    return lr * min(update / warmup, (warmup / update) ** 0.5)


def train_round(r: Round, model: nn.Module, data, epochs: int, batch: int = 128, lr: float = 1e-3,
                seed: int = 0) -> dict:
    """Train one round from its start point (update counter, warmup/inverse-sqrt lr schedule, epoch and batch
    position continue from the late snapshot, as open_lth rewinds) on the round's optimizer."""
    (xtr, ytr), (xte, yte) = data
    opt = r.optimizer
    steps = [0]
    counter = opt.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    start = r.start
    updates, curve = start.update, []
    skip = start.state.get("batch", 0)  # batches of the start epoch the dense round had already trained
    for epoch in range(start.epoch + 1, epochs + 1):
        # the data order depends on the seed and the epoch alone (as fairseq's), so a round continuing at
        # epoch e sees the batches the dense round saw from there on
        perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(mixed_seed(seed, "data", epoch)))
        first, first_lr = updates + 1, lr_at(updates + 1, lr)
        for b, i in enumerate(range(0, len(xtr), batch)):
            if epoch == start.epoch + 1 and b < skip:
                continue
            for group in opt.param_groups:
                group["lr"] = lr_at(updates + 1, lr)
            idx = perm[i:i + batch]
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            updates += 1
            r.after_update(updates, epoch=epoch - 1, state={"batch": b + 1})
        r.after_epoch(epoch, state={"batch": 0})
        curve.append({"epoch": epoch, "train_loss": loss.item(), "first_update": first, "first_lr": first_lr,
                      "updates": updates, "steps": steps[0]})
    counter.remove()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return {"test_accuracy": acc, "curve": curve}


BATCH = 128
LR = 1e-3


def run_ticket(config: LotteryConfig, run_dir, seed: int = 0, epochs: int = 4, n_train: int = 4096) -> Path:
    """Run every pending round of one ticket (resumable: finished rounds are skipped)."""
    data = make_data(seed, n_train=n_train, n_test=n_train // 2)
    model = make_model(seed)
    with LotteryRun(config, run_dir, task="teacher-mlp", framework="torch",
                    settings={"seed": seed, "epochs": epochs, "n_train": n_train},
                    total_epochs=epochs, total_updates=epochs * -(-n_train // BATCH), model=model) as run:
        for k in run.pending_rounds():
            with run.round(k, model, optimizer=lambda: torch.optim.Adam(model.parameters(), lr=LR),
                           reinit=lambda s: _reinit(model, s)) as r:
                out = train_round(r, model, data, epochs, batch=BATCH, lr=LR, seed=seed)
                r.finish({"test_accuracy": out["test_accuracy"]}, primary="test_accuracy", higher_is_better=True,
                         curve=out["curve"])
    return Path(run_dir)


def _reinit(model: nn.Module, seed: int) -> None:
    """The model's own initializer: build a fresh one with the new seed and copy its weights."""
    model.load_state_dict(make_model(seed).state_dict())


def main(out_dir, rounds: int = 5, seeds=(0,), epochs: int = 4, rate: float = 0.2) -> list:
    out_dir = Path(out_dir)
    dirs = []
    for seed in seeds:
        wt = LotteryConfig(rounds=rounds, rate=rate, reset="late", late_reset="1ep", seed=seed)
        wt_dir = run_ticket(wt, out_dir / f"teacher-mlp_wt_s{seed}", seed, epochs)
        rt = LotteryConfig(rounds=rounds, rate=rate, ticket=Ticket.RANDOM, masks_from=str(wt_dir), seed=seed)
        rt_dir = run_ticket(rt, out_dir / f"teacher-mlp_rt_s{seed}", seed, epochs)
        dirs += [wt_dir, rt_dir]
    return dirs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lth_plugins.demo", allow_abbrev=False,
                                description="one lottery ticket of the teacher-MLP demo (resumable)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--seed", type=int, default=0, help="seed of the run: the model's init, the data and its order")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--n-train", type=int, default=4096)
    LotteryConfig.add_arguments(p, prefix="--lottery-")
    return p


def cli(argv=None) -> int:
    from .errors import run_command

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)

    def train():
        run_ticket(LotteryConfig.from_namespace(args, run_seed=args.seed), args.run_dir, args.seed, args.epochs,
                   args.n_train)
    return run_command(train)


if __name__ == "__main__":
    sys.exit(cli())
