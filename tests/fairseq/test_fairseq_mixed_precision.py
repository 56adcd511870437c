"""Masks under fairseq's mixed precision: FP16Optimizer steps fp32 master copies of the weights and writes them
back to the model, so a pruned weight must stay zero there too. The master copies are checked on the CPU (a real
FP16Optimizer with per-parameter copies of bfloat16 weights); whole --fp16 / --memory-efficient-fp16 / --amp lottery
runs need CUDA and skip without it (they ran on an H100: docs/gpu.md)."""
import re

import pytest
import torch

from .helpers import MT_MODEL, fairseq_train, load_ckpt, load_mask

from fairseq import options  # noqa: E402  (helpers skips the module without fairseq)
from fairseq.dataclass.utils import convert_namespace_to_omegaconf  # noqa: E402
from fairseq.optim.fp16_optimizer import FP16Optimizer  # noqa: E402

from fairseq_ext.fp16 import fp32_master_copies, torch_optimizer, verify_pruned_weights_zero  # noqa: E402
from lth_plugins.enforce import MaskEnforcer  # noqa: E402
from lth_plugins.errors import LotteryError  # noqa: E402
from lth_plugins.masks import Mask  # noqa: E402
from lth_plugins.pruners import GlobalMagnitude  # noqa: E402
from lth_plugins.selection import select_parameters  # noqa: E402


def _fp16_optimizer(params, *flags):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, ["data", "--arch", "transformer", "--cpu", "--optimizer", "adam",
                                                "--lr", "0.01", "--weight-decay", "0.1", *flags])
    return FP16Optimizer.build_optimizer(convert_namespace_to_omegaconf(args), params)


def test_pruned_weights_stay_zero_in_fp32_master_copies_and_a_revived_one_is_named():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).bfloat16()
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, 0.5)
    enforcer = MaskEnforcer(params, mask)  # the driver's order: masks first, the optimizer copies them
    opt = _fp16_optimizer(list(model.parameters()), "--bf16", "--fp16-no-flatten-grads")
    enforcer.attach_optimizer(torch_optimizer(opt))
    masters = fp32_master_copies(opt)
    assert set(masters) == {id(p) for p in model.parameters()}
    for p in model.parameters():
        assert masters[id(p)].dtype == torch.float32 and torch.equal(masters[id(p)], p.detach().float())
    for _ in range(20):  # Adam with weight decay: a pruned weight's value, gradient and moments stay zero
        opt.zero_grad()
        opt.backward(model(torch.randn(32, 8, dtype=torch.bfloat16)).float().pow(2).mean())
        opt.step()
    enforcer.remove()
    assert verify_pruned_weights_zero(params, mask, opt, "round 1") == ["model", "fp32 master copy"]
    survivors = masters[id(params["2.weight"])][mask["2.weight"]]
    assert bool((survivors != 0).all())  # the copies did train

    pruned = (~mask["2.weight"]).nonzero()[0].tolist()
    masters[id(params["2.weight"])][tuple(pruned)] = 0.5  # the model still reads zero there
    assert params["2.weight"][tuple(pruned)] == 0
    with pytest.raises(LotteryError, match=r"round 1: pruned weights of 2\.weight are non-zero in the fp32 "
                                           r"master copy; the masks were not enforced"):
        verify_pruned_weights_zero(params, mask, opt, "round 1")
    assert verify_pruned_weights_zero(params, mask, None, "round 1") == ["model"]


@pytest.mark.parametrize("model_name", ["mlp", "transformer"])
def test_fairseq_adam_keeps_pruned_weights_zero_as_registered(monkeypatch, model_name):
    """fairseq_ext declares fairseq's Adam zero-preserving (no pass over the weights after its steps): the
    core's test of that promise, stale moments and weight decay included, run on it."""
    from fairseq.optim.adam import Adam

    from lth_plugins.enforce import is_zero_preserving
    from lth_plugins.registry import ZERO_PRESERVING, targets
    from .. import test_enforce_and_resets as core_tests

    assert {t for t in targets(ZERO_PRESERVING).values() if t.startswith("fairseq")} == {"fairseq.optim.adam:Adam"}
    assert is_zero_preserving(Adam([torch.nn.Parameter(torch.zeros(1))]))
    monkeypatch.setitem(core_tests.OPTIMIZERS, "fairseq_adam", lambda ps: Adam(ps, lr=1e-2, weight_decay=0.1))
    core_tests.test_masked_entries_stay_zero_through_training(model_name, "fairseq_adam", 0.1, 20)


def test_every_round_reports_its_pruned_weights_held(mt_winning):
    save, log = mt_winning
    for k in (1, 2, 3):
        pruned = sum(int((~m).sum()) for m in load_mask(save, k).values())
        assert f"[lottery] round {k}: all {pruned} pruned weights are zero in the model after 40 updates" in log


# fairseq 0.12's --bf16 implies --tpu (torch_xla), so it is no GPU mode; its FP16Optimizer path is the one above
@pytest.mark.skipif(not torch.cuda.is_available(), reason="fairseq's --fp16/--amp training needs CUDA")
@pytest.mark.parametrize("precision, where", [
    ("--fp16", "the model and the fp32 master copy"),
    ("--memory-efficient-fp16", "the model"),
    ("--amp", "the model"),
])
def test_mixed_precision_lottery_keeps_masks_on_gpu(mt_data, tmp_path, precision, where):
    args = [*MT_MODEL, "--max-update", "60", "--lottery-prune", "--lottery-rounds", "2",
            "--lottery-rate", "0.5", "--lottery-late-reset", "10u", precision]
    proc = fairseq_train(mt_data, tmp_path / "wt", *args, cpu=False)
    for k in (1, 2):
        assert re.search(rf"round {k}: all \d+ pruned weights are zero in {where} after 60 updates", proc.stdout), \
            proc.stdout[-3000:]
        ckpt = load_ckpt(tmp_path / "wt" / f"round_{k:02d}" / "checkpoint_last.pt")["model"]
        for name, m in load_mask(tmp_path / "wt", k).items():
            assert bool((ckpt[name].float()[~m] == 0).all()), name
