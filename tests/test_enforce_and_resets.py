"""Masks held through real optimizers by hooks alone; snapshots and the three resets."""
import copy

import pytest
import torch

from lth_plugins.enforce import MaskEnforcer
from lth_plugins.masks import Mask
from lth_plugins.pruners import GlobalMagnitude
from lth_plugins.resets import InitReset, LateReset, RandomReinit, take_snapshot
from lth_plugins.selection import select_parameters

from .models import all_models, loss_of

OPTIMIZERS = {
    "adam_wd": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "rmsprop_momentum": lambda ps: torch.optim.RMSprop(ps, lr=1e-3, momentum=0.9, alpha=0.99, eps=1e-8),
}


def pruned_model(name, density=0.5):
    model = all_models()[name]
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, density)
    return model, params, mask


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", ["mlp", "lstm", "transformer"])
def test_masked_entries_stay_zero_through_100_steps(name, opt_name):
    model, params, mask = pruned_model(name)
    opt = OPTIMIZERS[opt_name](model.parameters())
    # optimizer state from before pruning (stale moments) must not revive pruned weights either
    loss_of(name, model).backward()
    opt.step()
    enforcer = MaskEnforcer(params, mask, opt)
    start = {n: p.detach().clone() for n, p in params.items()}
    for _ in range(100):
        opt.zero_grad()
        loss_of(name, model).backward()
        for n, p in params.items():  # gradients are already masked when the step sees them
            assert not p.grad[~mask[n]].any()
        opt.step()
    for n, p in params.items():
        assert not p[~mask[n]].any(), n
        state = opt.state[p]
        for v in state.values():
            if torch.is_tensor(v) and v.shape == p.shape:
                assert not v[~mask[n]].any(), f"optimizer state of {n} moves pruned entries"
    assert any(not torch.equal(start[n], p) for n, p in params.items())  # survivors did train
    enforcer.remove()


def test_no_reparametrization_state_dict_deepcopy_strict_load():
    model, params, mask = pruned_model("transformer")
    keys = list(model.state_dict())
    opt = torch.optim.Adam(model.parameters())
    enforcer = MaskEnforcer(params, mask, opt)
    assert list(model.state_dict()) == keys
    clone = copy.deepcopy(model)
    dense = all_models()["transformer"]
    dense.load_state_dict(model.state_dict(), strict=True)
    for n, p in dict(dense.named_parameters()).items():
        assert not p[~mask[n]].any()
    assert torch.equal(clone(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 2, dtype=torch.long)),
                       model(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 2, dtype=torch.long)))
    enforcer.remove()


def test_snapshot_is_a_copy_not_a_view():
    model = all_models()["mlp"]
    snap = take_snapshot(model)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(snap["0.weight"], model[0].weight)


@pytest.mark.parametrize("reset_cls,kind", [(InitReset, "init"), (LateReset, "late")])
def test_reset_restores_snapshot_exactly_on_survivors(reset_cls, kind):
    model, params, mask = pruned_model("lstm")
    snaps = {"init": take_snapshot(model)}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    snaps["late"] = take_snapshot(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    reset_cls().apply(model, snaps.__getitem__, seed=0)
    MaskEnforcer(params, mask).remove()  # applies the mask once
    for n, p in params.items():
        assert torch.equal(p[mask[n]], snaps[kind][n][mask[n]])
        assert not p[~mask[n]].any()


def test_random_ticket_keeps_mask_differs_from_init_and_matches_initializer_distribution():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256))
    params = select_parameters(model)
    init = take_snapshot(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, 0.3)
    before = mask.checksum()
    RandomReinit().apply(model, lambda kind: init, seed=123)
    MaskEnforcer(params, mask).remove()
    assert mask.checksum() == before
    w, w0 = model[0].weight, init["0.weight"]
    surv = mask["0.weight"]
    assert not torch.equal(w[surv], w0[surv])
    # nn.Linear draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)): same support and variance as the original draw
    bound = 1 / 256 ** 0.5
    assert w.abs().max() <= bound and w[surv].abs().max() > 0.95 * bound
    assert abs(w[surv].var().item() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3
    # Kolmogorov-Smirnov distance to the original initialization's values
    a, b = torch.sort(w[surv].reshape(-1)).values, torch.sort(w0.reshape(-1)).values
    grid = torch.linspace(-bound, bound, 200)
    cdf = lambda x: torch.searchsorted(x, grid).float() / x.numel()  # noqa: E731
    assert (cdf(a) - cdf(b)).abs().max() < 0.03


def test_random_reinit_uses_a_framework_initializer_when_given():
    model = all_models()["mlp"]
    seen = []

    def reinit(seed):
        seen.append(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)

    RandomReinit().apply(model, lambda kind: None, seed=7, reinit=reinit)
    assert seen == [7] and all(bool((p == 0.5).all()) for p in model.parameters())
