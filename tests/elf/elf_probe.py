"""Runs ``elf_ext.train`` in this process and records, for the tests, what only the running process sees:
at every round start, how the model's weights relate to the late snapshot and the mask; at every epoch end,
whether ELF's model and its acting copy (``mi["actor"]``) hold zeros at every pruned entry, and the largest
reward the actor saw (the games' raw rewards) and the trainer learned from (clipped).

    python elf_probe.py OUT.jsonl -- <elf_ext.train flags>
"""
import json
import sys

from elf_ext import train  # first: it sets OpenMP's wait policy before torch is loaded

import torch  # noqa: E402


def main():
    out, argv = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]

    def record(entry):
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")

    T = train.LotteryTraining
    begin_round, end_epoch, actor, trained = T._begin_round, T._end_epoch, T.actor, T.train
    seen = {"actor_max_r": 0.0, "train_max_r": 0.0}

    def probed_begin(self, r, resume):
        begin_round(self, r, resume)
        mask = r.mask
        steps = [int(st["step"]) for st in r.optimizer.state.values() if "step" in st]
        entry = {"event": "start", "round": self.k, "surviving": mask.num_surviving(), "resumed": resume is not None,
                 "updates": self.updates, "pruned_nonzero": train.pruned_nonzero(self.model, mask),
                 "actor_pruned_nonzero": train.pruned_nonzero(self.mi["actor"], mask),
                 "adam_steps": max(steps, default=0), "games": self.tracker.games,
                 "saved_games": len(resume["episodes"]["scores"]) if resume else 0,
                 "threads": torch.get_num_threads()}
        run = self.round.run
        store = run.source or run.store  # a random ticket: its winning run's snapshot
        if store.has_snapshot("late") and resume is None:
            late = store.load_snapshot("late")
            params = dict(self.model.named_parameters())
            entry["max_diff_to_late"] = max(float((params[n].detach()[m] - late[n][m]).abs().max())
                                            if m.any() else 0.0 for n, m in mask.items())
        record(entry)

    def probed_actor(self, batch):
        seen["actor_max_r"] = max(seen["actor_max_r"], float(batch["last_r"].abs().max()))
        return actor(self, batch)

    def probed_train(self, batch):
        before = self.updates
        trained(self, batch)
        seen["train_max_r"] = max(seen["train_max_r"], float(batch["last_r"].abs().max()))
        if self.updates != before:
            record({"event": "update", "round": self.k, "updates": self.updates})

    def probed_epoch(self, epoch):
        end_epoch(self, epoch)
        mask, acting = self.round.mask, self.mi["actor"]
        same = all(torch.equal(a, b) for a, b in zip(acting.state_dict().values(),
                                                     self.model.state_dict().values()))
        record({"event": "epoch", "round": self.k, "epoch": epoch, "updates": self.updates,
                "model_pruned_nonzero": train.pruned_nonzero(self.model, mask),
                "actor_pruned_nonzero": train.pruned_nonzero(acting, mask), "actor_equals_model": same,
                "actor_is_copy": acting is not self.model, **seen})

    T._begin_round, T._end_epoch, T.actor, T.train = probed_begin, probed_epoch, probed_actor, probed_train
    sys.exit(train.main(argv))


if __name__ == "__main__":
    main()
