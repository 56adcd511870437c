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
    "rmsprop_centered": lambda ps: torch.optim.RMSprop(ps, lr=1e-3, centered=True, weight_decay=0.01),
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=1e-2, weight_decay=0.01),
    "adam_amsgrad": lambda ps: torch.optim.AdamW(ps, lr=1e-2, amsgrad=True),
}


def test_every_zero_preserving_optimizer_is_tested():
    from lth_plugins.enforce import is_zero_preserving
    from lth_plugins.registry import ZERO_PRESERVING, targets

    optimizers = [make([torch.nn.Parameter(torch.zeros(1))]) for make in OPTIMIZERS.values()]
    tested = {f"{type(o).__module__}:{type(o).__qualname__}" for o in optimizers}
    assert all(is_zero_preserving(o) for o in optimizers)
    # the core's own; an adapter tests those it declares (fairseq's Adam: tests/fairseq)
    assert {t for t in targets(ZERO_PRESERVING).values() if t.startswith("torch.")} == tested


def pruned_model(name, density=0.5):
    model = all_models()[name]
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, density)
    return model, params, mask


CASES = (  # the paper's optimizers for 100 steps on every model; the others for 20; both index layouts
    [(m, o, d, 100) for m in ("mlp", "lstm", "transformer") for o in ("adam_wd", "rmsprop_momentum")
     for d in (0.5, 0.1)]
    + [(m, o, 0.1, 20) for m in ("mlp", "transformer") for o in sorted(OPTIMIZERS)
       if o not in ("adam_wd", "rmsprop_momentum")])


@pytest.mark.parametrize("name,opt_name,density,steps", CASES)
def test_masked_entries_stay_zero_through_training(name, opt_name, density, steps):
    model, params, mask = pruned_model(name, density)
    opt = OPTIMIZERS[opt_name](model.parameters())
    # optimizer state from before pruning (stale moments) must not revive pruned weights either
    loss_of(name, model).backward()
    opt.step()
    enforcer = MaskEnforcer(params, mask, opt)
    start = {n: p.detach().clone() for n, p in params.items()}
    for _ in range(steps):
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


class Drifting(torch.optim.SGD):
    """An optimizer that moves every weight, gradient or not: only the post-step pass keeps masks."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(0.01)


def test_unknown_optimizers_get_weights_zeroed_after_every_step():
    model, params, mask = pruned_model("mlp")
    opt = Drifting(model.parameters(), lr=0.1)
    MaskEnforcer(params, mask, opt)
    for _ in range(3):
        opt.zero_grad()
        loss_of("mlp", model).backward()
        opt.step()
        for n, p in params.items():
            assert not p[~mask[n]].any()


def test_gradients_set_by_hand_are_zeroed_before_the_step():
    model, params, mask = pruned_model("mlp")
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    MaskEnforcer(params, mask, opt)
    loss_of("mlp", model).backward()
    for p in model.parameters():
        p.grad = torch.ones_like(p)  # replaces backward's (masked) gradients
    opt.step()
    for n, p in params.items():
        assert not p[~mask[n]].any()


def test_non_contiguous_gradients_are_masked_too():
    p = torch.nn.Parameter(torch.randn(6, 4))
    mask = Mask({"w": torch.rand(6, 4) > 0.3})
    MaskEnforcer({"w": p}, mask)
    (p.t() * torch.randn(4, 6)).sum().backward()  # produces a non-contiguous grad layout is allowed
    p.grad = p.grad.t().contiguous().t()  # force a non-contiguous grad, then zero it through the enforcer
    enforcer = MaskEnforcer({"w": p}, mask)
    enforcer.zero_grads()
    assert not p.grad[~mask["w"]].any() and not p.grad.is_contiguous()


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


def test_a_step_with_untouched_gradients_makes_no_pass_and_a_touched_one_is_zeroed(monkeypatch):
    """Before the step only gradients changed since backward are zeroed again: with a zero-preserving
    optimizer an ordinary step costs the gradient hooks alone."""
    import lth_plugins.enforce as enforce

    model, params, mask = pruned_model("mlp")
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    MaskEnforcer(params, mask, opt)
    passes = []
    real = enforce.zero_pruned
    monkeypatch.setattr(enforce, "zero_pruned", lambda ts, ks: (passes.append(len(ts)), real(ts, ks)))
    loss_of("mlp", model).backward()
    opt.step()
    assert passes == []
    opt.zero_grad()
    loss_of("mlp", model).backward()
    name, p = next(iter(params.items()))
    p.grad.add_(1.0)  # one gradient changed in place after backward
    opt.step()
    assert passes == [1] and not p[~mask[name]].any()


def test_masks_cost_one_byte_per_pruned_weight_and_share_the_round_mask_on_the_cpu():
    model, params, mask = pruned_model("transformer")
    enforcer = MaskEnforcer(params, mask)
    pruned = [n for n, m in mask.items() if not bool(m.all())]
    assert enforcer.device_bytes() == sum(mask[n].numel() for n in pruned)
    assert all(enforcer._keep[n].data_ptr() == mask[n].data_ptr() for n in pruned)
    enforcer.remove()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("numel", [7, 5000, (1 << 18) + 3])
def test_zeroing_writes_exact_zeros_whatever_the_values(dtype, numel):
    from lth_plugins.enforce import zero_where

    g = torch.Generator().manual_seed(numel)
    t = torch.randn(numel, generator=g).to(dtype)
    t[::5] = float("nan")
    t[1::7] = float("-inf")
    keep = torch.rand(numel, generator=g) > 0.4
    expected = torch.where(keep, t, torch.zeros((), dtype=dtype))
    zero_where(t, keep)
    assert torch.equal(t[~keep].view(-1), torch.zeros(int((~keep).sum()), dtype=dtype))
    assert not torch.signbit(t[~keep]).any()  # +0.0, not -0.0
    assert torch.equal(t[keep].isnan(), expected[keep].isnan())
    assert torch.equal(t[keep].nan_to_num(), expected[keep].nan_to_num())
    square = torch.randn(64, 80).to(dtype)  # a non-contiguous view takes the general path
    view, mask = square.t(), torch.rand(80, 64, generator=g) > 0.5
    zero_where(view, mask)
    assert not view[~mask].any() and view[mask].ne(0).all()
