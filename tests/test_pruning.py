"""Global magnitude pruning and the alternative strategies, on real models."""
import pytest
import torch

from lth_plugins.hparams import survivors
from lth_plugins.masks import Mask
from lth_plugins.pruners import GlobalMagnitude, LayerwiseMagnitude, RandomPruner
from lth_plugins.selection import select_parameters

from .models import all_models, loss_of


@pytest.mark.parametrize("name", ["mlp", "lstm", "transformer"])
def test_iterative_survivor_counts_exact_over_20_rounds(name):
    model = all_models()[name]
    params = select_parameters(model)
    n = sum(p.numel() for p in params.values())
    mask = Mask.ones(params)
    pruner = GlobalMagnitude()
    for k in range(1, 21):
        with torch.no_grad():  # stand-in for a round of training: the weights move between rounds
            for p in params.values():
                p.add_(0.01 * torch.randn_like(p))
        before = {nm: m.clone() for nm, m in mask.items()}
        pruner.prune(params, mask, 0.8 ** k)
        assert mask.num_surviving() == survivors(n, 0.2, k) == round(n * 0.8 ** k)
        for nm in mask:  # only survivors are ever pruned: nothing comes back
            assert not (mask[nm] & ~before[nm]).any()
    assert abs(1 - mask.density() - 0.988) < 1e-3


def test_ranking_is_global_and_biases_are_pruned():
    model = torch.nn.Sequential(torch.nn.Linear(20, 20), torch.nn.Linear(20, 20))
    with torch.no_grad():
        model[0].weight.mul_(1e-3)  # a layer of tiny weights
        model[1].weight.mul_(10.0)
        model[0].bias.fill_(1e-4)  # tiny biases: pruned first
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, 0.5)
    d = mask.densities()
    assert d["0.weight"] < 0.05 and d["1.weight"] > 0.9
    assert d["0.bias"] == 0.0
    # the kept entries are exactly the largest magnitudes overall
    flat = torch.cat([p.detach().abs().reshape(-1) for p in params.values()])
    kept = torch.cat([m.reshape(-1) for m in mask.values()])
    assert flat[kept].min() >= flat[~kept].max()


def test_ties_are_broken_deterministically_by_position():
    w = {"a": torch.ones(10), "b": torch.ones(10)}
    mask = Mask.ones(w)
    GlobalMagnitude().prune(w, mask, 0.35)  # 7 of 20 survive, all tied
    assert mask["a"].tolist() == [True] * 7 + [False] * 3 and not mask["b"].any()


@pytest.mark.parametrize("target_in_zero_bin", [False, True])
def test_survivors_match_a_full_sort_across_chunks(monkeypatch, target_in_zero_bin):
    """Pruned entries holding any value, surviving exact zeros and ties: the survivors are the top scores among
    the current survivors, ties by (parameter order, position), also when the cut falls among the zeros."""
    import lth_plugins.pruners as pruners

    monkeypatch.setattr(pruners, "CHUNK", 1000)  # several chunks per tensor
    g = torch.Generator().manual_seed(3)
    w = {"a": torch.randn(2500, generator=g), "b": torch.randn(40, 30, generator=g), "c": torch.randn(7, generator=g)}
    for t in w.values():
        t[torch.rand(t.shape, generator=g) < 0.3] = 0.0  # exact zeros, alive or pruned
        t[torch.rand(t.shape, generator=g) < 0.1] = 0.5  # ties
    mask = Mask.ones(w)
    for m in mask.values():
        m &= torch.rand(m.shape, generator=g) < 0.7  # pruned before, their weights left as they are
    alive = torch.cat([m.reshape(-1) for m in mask.values()])
    scores = torch.cat([t.abs().reshape(-1) for t in w.values()])
    n_alive = int(alive.sum())
    n_nonzero = int((alive & (scores > 0)).sum())
    target = n_nonzero + (n_alive - n_nonzero) // 2 if target_in_zero_bin else n_alive // 3
    order = sorted(torch.nonzero(alive).reshape(-1).tolist(), key=lambda i: (-float(scores[i]), i))
    expected = torch.zeros_like(alive)
    expected[order[:target]] = True
    GlobalMagnitude().prune(w, mask, target / mask.num_selected())
    assert torch.equal(torch.cat([m.reshape(-1) for m in mask.values()]), expected)


def test_layerwise_prunes_each_parameter_to_the_same_density():
    model = all_models()["transformer"]
    params = select_parameters(model)
    mask = Mask.ones(params)
    LayerwiseMagnitude().prune(params, mask, 0.8 ** 3)
    for name, m in mask.items():
        assert int(m.sum()) == survivors(m.numel(), 0.2, 3), name


def test_random_pruner_global_count_and_seeded():
    model = all_models()["mlp"]
    params = select_parameters(model)
    m1, m2, m3 = Mask.ones(params), Mask.ones(params), Mask.ones(params)
    RandomPruner(seed=1).prune(params, m1, 0.5)
    RandomPruner(seed=1).prune(params, m2, 0.5)
    RandomPruner(seed=2).prune(params, m3, 0.5)
    n = m1.num_selected()
    assert m1.num_surviving() == survivors(n, 0.5, 1)
    assert m1.checksum() == m2.checksum() != m3.checksum()


def test_oneshot_equals_topk_of_dense_weights():
    model = all_models()["lstm"]
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, 0.8 ** 5)
    flat = torch.cat([p.detach().abs().reshape(-1) for p in params.values()])
    k = survivors(flat.numel(), 0.2, 5)
    threshold = flat.topk(k).values.min()
    kept = torch.cat([m.reshape(-1) for m in mask.values()])
    assert int(kept.sum()) == k and flat[kept].min() >= threshold


def test_include_exclude_patterns_select_parameters():
    model = all_models()["transformer"]
    sel = select_parameters(model, exclude=["embed.*"])
    assert "embed.weight" not in sel and "out.weight" in sel and "out.bias" in sel
    sel = select_parameters(model, include=["transformer.encoder.*"])
    assert sel and all(n.startswith("transformer.encoder.") for n in sel)


def test_nan_weights_are_refused_with_the_parameter_name():
    w = {"layer.weight": torch.tensor([1.0, float("nan"), 2.0])}
    with pytest.raises(ValueError, match="layer.weight"):
        GlobalMagnitude().prune(w, Mask.ones(w), 0.5)


def test_backward_through_loss_helper():  # the models used here really train
    for name, model in all_models().items():
        loss_of(name, model).backward()
        assert all(p.grad is not None for p in model.parameters())
