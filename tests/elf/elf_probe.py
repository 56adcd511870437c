"""Runs ``elf_ext.train`` in this process and records, for the tests, what only the running process sees:
at every round start, how the model's weights relate to the late snapshot and the mask; at every epoch end,
whether ELF's model and its acting copy (``mi["actor"]``) hold zeros at every pruned entry.

    python elf_probe.py OUT.jsonl -- <elf_ext.train flags>
"""
import json
import sys

import torch


def main():
    out, argv = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    from elf_ext import train

    def record(entry):
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def pruned_nonzero(model, mask):
        params = dict(model.named_parameters())
        return int(sum(int((params[n].detach()[~m] != 0).sum()) for n, m in mask.items()))

    start_round, end_epoch = train.LotteryTraining._start_round, train.LotteryTraining._end_epoch

    def probed_start(self, k):
        start_round(self, k)
        mask = self.lottery.mask
        entry = {"event": "start", "round": k, "surviving": mask.num_surviving(),
                 "pruned_nonzero": pruned_nonzero(self.model, mask)}
        store = self.lottery.source or self.lottery.store  # a random ticket: its winning run's snapshot
        if store.has_snapshot("late"):
            late = store.load_snapshot("late")
            params = dict(self.model.named_parameters())
            entry["max_diff_to_late"] = max(float((params[n].detach()[m] - late[n][m]).abs().max())
                                            if m.any() else 0.0 for n, m in mask.items())
        record(entry)

    def probed_epoch(self, epoch):
        end_epoch(self, epoch)
        mask, actor = self.lottery.mask, self.mi["actor"]
        same = all(torch.equal(a, b) for a, b in zip(actor.state_dict().values(),
                                                     self.model.state_dict().values()))
        record({"event": "epoch", "round": self.round, "epoch": epoch, "updates": self.updates,
                "model_pruned_nonzero": pruned_nonzero(self.model, mask),
                "actor_pruned_nonzero": pruned_nonzero(actor, mask), "actor_equals_model": same,
                "actor_is_copy": actor is not self.model})

    train.LotteryTraining._start_round, train.LotteryTraining._end_epoch = probed_start, probed_epoch
    sys.exit(train.main(argv))


if __name__ == "__main__":
    main()
