"""ELF's ``ActorCritic`` (A2C with the importance factor of ``PolicyGradient``) plus advantage clipping.

The paper clips advantages to [-1, 1] (Sec. 3.2.3); ELF has no flag for it, so this subclass adds
``--adv_clip`` (0 = off) and clips R - V before ELF's ``PolicyGradient.feed`` weighs the log-policy gradient
by it times the clamped ratio pi / pi_old (``--ratio_clamp``).  Everything else is ELF's own code path.
"""
from rlpytorch import ActorCritic, ArgsProvider, add_err


class ActorCriticClipped(ActorCritic):
    def __init__(self):
        super().__init__()
        self.args = ArgsProvider(
            call_from=self,
            define_args=[("adv_clip", dict(type=float, default=1.0,
                                           help="advantages R - V clipped to [-adv_clip, adv_clip]; 0: off "
                                                "(the paper: 1)"))],
            more_args=["num_games", "batchsize", "value_node"],
            child_providers=[self.pg.args, self.discounted_reward.args, self.value_matcher.args],
        )
        # ELF declares ratio_clamp by its int default (10): the paper's 1.5 must parse from the command line
        for name, spec in self.pg.args._define_args:
            if name == "ratio_clamp":
                spec["type"] = float

    def advantage(self, R, V):
        adv = R - V
        clip = self.args.adv_clip
        return adv.clamp(-clip, clip) if clip and clip > 0 else adv

    def update(self, mi, batch, stats):
        """ELF's ActorCritic.update with the clipped advantage (n-step returns bootstrapped from V at T-1)."""
        m = mi["model"]
        value_node = self.args.value_node
        T = batch["s"].size(0)

        state_curr = m(batch.hist(T - 1))
        self.discounted_reward.setR(state_curr[value_node].squeeze().data, stats)
        err = None
        for t in range(T - 2, -1, -1):
            bht = batch.hist(t)
            state_curr = m.forward(bht)
            V = state_curr[value_node].squeeze()
            R = self.discounted_reward.feed(dict(r=batch["r"][t], terminal=batch["terminal"][t]), stats=stats)
            err = add_err(err, self.pg.feed(self.advantage(R, V.data), state_curr, bht, stats, old_pi_s=bht))
            err = add_err(err, self.value_matcher.feed({value_node: V, "target": R}, stats))
        stats["cost"].feed(err.item() / (T - 1))
        err.backward()
