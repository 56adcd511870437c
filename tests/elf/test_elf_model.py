"""The paper's Atari network on ELF-shaped input, and the A2C loss of the plugin's method checked against
the same loss written by hand: importance ratio clamped, advantages clipped, entropy term."""
import argparse
import os
from collections import defaultdict

import pytest
import torch

from .helpers import elf_args, require_elf

require_elf()

from rlpytorch import ArgsProvider  # noqa: E402
from rlpytorch.trainer.utils import ValueStats  # noqa: E402

from elf_ext.method import ActorCriticClipped  # noqa: E402
from elf_ext.network import LotteryAtariNet  # noqa: E402

# ELF's Atari input: hist_len 4 frames of 3 x 105 x 80 (every 2nd pixel of 210 x 160)
ELF_PARAMS = dict(hist_len=4, num_action=4, feature_height=105, feature_width=80)


def paper_param_count(in_ch, actions):
    convs = (in_ch * 64 * 25 + 64) + (64 * 64 * 25 + 64) + 2 * (64 * 64 * 9 + 64)
    mlp = (1920 * 512 + 512) + (512 * 512 + 512)
    return convs + mlp + (512 * actions + actions) + (512 + 1)


def test_network_shapes_and_parameter_count():
    net = LotteryAtariNet(elf_args(**ELF_PARAMS))
    assert net.linear_dim == 1920
    s = torch.rand(5, 12, 105, 80)
    out = net({"s": s})
    assert out["pi"].shape == (5, 4) and out["V"].shape == (5, 1)
    assert torch.allclose(out["pi"].sum(1), torch.ones(5))
    assert net.trunk(s).shape == (5, 64, 6, 5)
    assert sum(p.numel() for p in net.parameters()) == paper_param_count(12, 4) == 1_444_357
    convs = [m for m in net.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (64, (5, 5), (1, 1), (2, 2)), (64, (5, 5), (1, 1), (2, 2)), (64, (3, 3), (1, 1), (1, 1)),
        (64, (3, 3), (1, 1), (1, 1))]
    assert all(isinstance(m, torch.nn.ReLU) for m in net.trunk[1::3])
    # ELF's acting forward is "volatile": no graph
    net.set_volatile(True)
    assert not net({"s": s})["pi"].requires_grad
    net.set_volatile(False)
    assert net({"s": s})["pi"].requires_grad


def test_network_follows_hist_len_and_actions():
    net = LotteryAtariNet(elf_args(hist_len=2, num_action=18, feature_height=105, feature_width=80))
    assert net({"s": torch.rand(2, 6, 105, 80)})["pi"].shape == (2, 18)
    assert sum(p.numel() for p in net.parameters()) == paper_param_count(6, 18)


class TinyPolicy(torch.nn.Module):
    """A real (small) model with ELF's outputs, so the loss can be written by hand."""

    def __init__(self, n_in, n_act):
        super().__init__()
        self.pi = torch.nn.Linear(n_in, n_act)
        self.v = torch.nn.Linear(n_in, 1)

    def forward(self, x):
        return dict(pi=torch.softmax(self.pi(x["s"]), 1), V=self.v(x["s"]))


class Batch(dict):
    """ELF's Batch interface used by ActorCritic: batch[key] and batch.hist(t)."""

    def __getitem__(self, key):
        if key in self.keys():
            return dict.__getitem__(self, key)
        return dict.__getitem__(self, "last_" + key)[1:]

    def hist(self, t):
        return {k: v[t] for k, v in self.items()}


def make_method(argv):
    method = ActorCriticClipped()
    ArgsProvider.Load(argparse.ArgumentParser(), {"method": method}, cmd_line=argv,
                      global_defaults={"ratio_clamp": 1.5, "entropy_ratio": 0.01})
    return method


def elf_loss_grads(method, model, batch):
    model.zero_grad()
    method.update({"model": model}, batch, defaultdict(ValueStats))
    return [p.grad.clone() for p in model.parameters()]


def hand_loss(model, batch, T, discount=0.99, ratio_clamp=1.5, adv_clip=1.0, entropy=0.01, min_prob=1e-6):
    """Sum over t of: -mean_i w_i log(pi_i[a_i]) + entropy * mean_i sum_a pi log pi + SmoothL1(V, R), where
    w = clip(R - V, +-adv_clip) * min(pi[a] / pi_old[a], ratio_clamp) is a constant (no gradient)."""
    out = model({"s": batch["s"][T - 1]})
    R = out["V"].squeeze().detach()
    loss = 0.0
    for t in range(T - 2, -1, -1):
        out = model({"s": batch["s"][t]})
        pi, V = out["pi"], out["V"].squeeze()
        r, term = batch["last_r"][t + 1], batch["last_terminal"][t + 1]
        R = torch.where(term.bool(), r, R * discount + r)
        a = batch["a"][t].long()
        adv = (R - V.detach()).clamp(-adv_clip, adv_clip) if adv_clip else R - V.detach()
        ratio = (pi.detach() / batch["pi"][t]).clamp(max=ratio_clamp).gather(1, a[:, None]).squeeze(1)
        w = adv * ratio
        logpi = (pi + min_prob).log()
        loss = loss - (w * logpi.gather(1, a[:, None]).squeeze(1)).mean()
        loss = loss + entropy * (logpi * pi).sum() / len(a)
        loss = loss + torch.nn.functional.smooth_l1_loss(V, R)
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    T, B, n_in, n_act = 4, 6, 5, 3
    old = torch.softmax(torch.randn(T, B, n_act, generator=g) * 2, -1)
    return Batch(
        s=torch.randn(T, B, n_in, generator=g),
        a=torch.randint(0, n_act, (T, B), generator=g),
        pi=old,
        last_r=torch.tensor([[0.0] * B, [1, -1, 0, 1, 0, 0], [1, 1, 1, -1, 0, 1], [0, 0, 1, 1, -1, 0]]) * 3,
        last_terminal=torch.tensor([[0] * B, [0, 0, 1, 0, 0, 0], [0] * B, [0, 1, 0, 0, 0, 0]], dtype=torch.uint8),
    )


def test_loss_matches_the_hand_written_a2c_loss(batch):
    model = TinyPolicy(5, 3)
    method = make_method([])
    assert method.args.adv_clip == 1.0 and method.pg.args.ratio_clamp == 1.5
    got = elf_loss_grads(method, model, batch)
    want = hand_loss(model, batch, T=4)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-6), (g, w)


def test_clips_are_active_and_flags_change_them(batch):
    """The batch has advantages beyond +-1 and ratios beyond 1.5: each setting changes the gradient."""
    model = TinyPolicy(5, 3)
    base = elf_loss_grads(make_method([]), model, batch)
    no_clip = elf_loss_grads(make_method(["--adv_clip", "0"]), model, batch)
    assert not all(torch.allclose(a, b) for a, b in zip(base, no_clip))
    for g, w in zip(no_clip, hand_loss(model, batch, T=4, adv_clip=0)):
        assert torch.allclose(g, w, atol=1e-6)
    clamp = elf_loss_grads(make_method(["--ratio_clamp", "2.5", "--adv_clip", "0.5"]), model, batch)
    for g, w in zip(clamp, hand_loss(model, batch, T=4, ratio_clamp=2.5, adv_clip=0.5)):
        assert torch.allclose(g, w, atol=1e-6)
    assert not all(torch.allclose(a, b) for a, b in zip(base, clamp))
    for g, w in zip(elf_loss_grads(make_method(["--entropy_ratio", "0.5"]), model, batch),
                    hand_loss(model, batch, T=4, entropy=0.5)):
        assert torch.allclose(g, w, atol=1e-6)


def test_lottery_flags_are_elf_flags_with_paper_defaults():
    from elf_ext import lottery_model
    from elf_ext.flags import LotteryArgs

    lottery, method = LotteryArgs(), ActorCriticClipped()
    ArgsProvider.Load(argparse.ArgumentParser(), {"lottery": lottery, "method": method},
                      cmd_line=["--lottery_rate", "0.3", "--lottery_late_reset", "500u", "--lottery_include",
                                "trunk.*,mlp.*", "--lottery_ticket", "random", "--lottery_masks_from", "WT",
                                "--ratio_clamp", "2.5"],
                      global_defaults=lottery_model.Defaults)
    cfg = lottery.config()
    assert (cfg.rate, cfg.late_reset, cfg.include, cfg.ticket, cfg.masks_from, cfg.rounds) == \
        (0.3, "500u", ("trunk.*", "mlp.*"), "random", os.path.abspath("WT"), 20)
    a = lottery.args
    assert (a.lottery_prune, a.lottery_epochs, a.lottery_epoch_batches, a.lottery_last_games) == (False, 25, 1000, 1024)
    assert (method.pg.args.ratio_clamp, method.pg.args.entropy_ratio, method.args.adv_clip) == (2.5, 0.01, 1.0)
    assert lottery_model.Defaults["ratio_clamp"] == 1.5
    assert lottery_model.Defaults["lr"] == 1e-3 and lottery_model.Defaults["adam_eps"] == 1e-3
    assert (lottery_model.Defaults["num_games"], lottery_model.Defaults["T"], lottery_model.Defaults["batchsize"]) \
        == (1024, 6, 128)
    assert lottery_model.Models["actor_critic_lottery"] == [LotteryAtariNet, ActorCriticClipped]
