"""Run by the FLARE integration tests in a subprocess (FLARE forks its agents from this process).

    python tests/flare/flare_probe.py lottery OUT.json -- <flare_ext.a2c flags>
        runs every pending round, recording when the late-reset snapshot appears and checking, after
        training, that the round's mask holds on the model FLARE trained (the model owned by SimpleAC).
    python tests/flare/flare_probe.py crash -- <flags>
        a dense run in which agent 1's env raises after 30 steps.
"""
import json
import sys

import torch

from flare_ext import a2c
from flare_ext.env import GymnasiumEnv


class CrashingEnv(GymnasiumEnv):
    def __init__(self, *args, seed=None, **kwargs):
        super().__init__(*args, seed=seed, **kwargs)
        self.crash = (seed or 0) % 64 == 1  # agent 1 (env seeds are base + agent index)
        self.total_steps = 0

    def step(self, actions, actrep=1):
        self.total_steps += 1
        if self.crash and self.total_steps > 30:
            raise RuntimeError("injected env failure in agent 1")
        return super().step(actions, actrep)


def lottery(out_path, argv):
    from lth_plugins.hparams import Reset, Ticket
    from lth_plugins.run import LotteryRun

    events = {"epochs": [], "updates_seen": 0, "rounds": []}
    # the run's own steps, which the Round the adapter drives calls
    orig_after_epoch, orig_after_update = LotteryRun._after_epoch, LotteryRun._after_update
    orig_finish, orig_start = LotteryRun._finish_round, LotteryRun._start_round

    def after_update(self, model, n, **kw):
        events["updates_seen"] = n
        return orig_after_update(self, model, n, **kw)

    def after_epoch(self, model, epoch, **kw):
        before = self.store.has_snapshot("late")
        orig_after_epoch(self, model, epoch, **kw)
        events["epochs"].append({"round": self.active_round, "epoch": epoch, "update": events["updates_seen"],
                                 "late_before": before, "late_after": self.store.has_snapshot("late")})

    def start_round(self, k, model, *args, **kwargs):
        mask = orig_start(self, k, model, *args, **kwargs)
        events.setdefault("start_states", {})[k] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return mask

    def finish_round(self, k, model, metrics, **kwargs):
        # the model FLARE trained this round, before the core computes the next mask
        params = dict(model.named_parameters())
        mask = self.mask
        pruned_nonzero = sum(int((params[n].detach()[~m] != 0).sum()) for n, m in mask.items())
        pruned = sum(int((~m).sum()) for m in mask.values())
        start = events["start_states"][k]
        moved = sum(int((params[n].detach() != start[n]).sum()) for n in params)
        rec = {"round": k, "pruned": pruned, "pruned_nonzero": pruned_nonzero, "moved": moved,
               "density": mask.density()}
        if k > 0 and self.config.ticket is Ticket.WINNING:
            snap = self.snapshot("late" if self.config.reset is Reset.LATE else "init")
            rec["start_equals_snapshot_times_mask"] = all(
                torch.equal(start[n], snap[n] * mask[n].to(snap[n].dtype)) for n in mask)
        events["rounds"].append(rec)
        return orig_finish(self, k, model, metrics, **kwargs)

    LotteryRun._after_epoch, LotteryRun._after_update = after_epoch, after_update
    LotteryRun._finish_round, LotteryRun._start_round = finish_round, start_round
    rc = a2c.main(argv)
    events.pop("start_states", None)
    with open(out_path, "w") as f:
        json.dump({"rc": rc, **events}, f)
    return rc


if __name__ == "__main__":
    mode = sys.argv[1]
    rest = sys.argv[sys.argv.index("--") + 1:]
    if mode == "lottery":
        sys.exit(lottery(sys.argv[2], rest))
    if mode == "crash":
        sys.exit(a2c.main(rest, env_class=CrashingEnv))
    sys.exit(f"unknown mode {mode}")
