"""Masks under fairseq's optimizer wrappers: the torch optimizer inside them, and the fp32 master copies that
FP16Optimizer (--fp16, --bf16) steps and writes back to the model, where a pruned weight must stay zero too."""
from typing import Dict, List, Optional

import torch

from lth_plugins.errors import LotteryError


def torch_optimizer(fairseq_optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside fairseq's optimizer wrappers (FairseqOptimizer, FP16Optimizer, ...)."""
    opt = fairseq_optimizer
    for _ in range(5):
        if isinstance(opt, torch.optim.Optimizer):
            return opt
        opt = getattr(opt, "optimizer", None) or getattr(opt, "_optimizer", None)
    raise LotteryError(f"cannot find the torch optimizer inside {type(fairseq_optimizer).__name__}")


def fp32_master_copies(fairseq_optimizer) -> Dict[int, torch.Tensor]:
    """id(model parameter) -> its fp32 master copy shaped like it, for FP16Optimizer (--fp16, --bf16), whose
    torch optimizer steps these copies and writes them back to the model; {} for optimizers that keep none
    (fp32 training, --memory-efficient-fp16) or no optimizer yet (None)."""
    model_params = getattr(fairseq_optimizer, "fp16_params", None)
    masters = getattr(fairseq_optimizer, "fp32_params", None)
    if model_params is None or masters is None:
        return {}
    if isinstance(masters, list):  # --fp16-no-flatten-grads: one copy per parameter
        return {id(p): q.data.view(p.shape) for p, q in zip(model_params, masters)}
    flats = {None: masters} if torch.is_tensor(masters) else masters  # flat copies, one per device
    out = {}
    for device, flat in flats.items():
        offset = 0
        for p in model_params:  # build_fp32_params lays the parameters of a device out in this order
            if len(flats) > 1 and p.device.index != device:
                continue
            out[id(p)] = flat.data[offset:offset + p.numel()].view(p.shape)
            offset += p.numel()
    return out


def masters_by_name(params, fairseq_optimizer) -> Dict[str, torch.Tensor]:
    """The fp32 master copies of `params` (name -> copy), for those the optimizer keeps one of."""
    masters = fp32_master_copies(fairseq_optimizer)
    return {n: masters[id(p)] for n, p in params.items() if id(p) in masters}


def zero_pruned_masters(params, mask, fairseq_optimizer) -> None:
    """Zero the pruned entries of the fp32 master copies: FP16Optimizer copied the weights when it was built,
    which may be before this round's masks zeroed them (the checkpoint's restore builds it)."""
    with torch.no_grad():
        for name, master in masters_by_name(params, fairseq_optimizer).items():
            master.masked_fill_(~mask[name].to(master.device), 0)


def first_revived(tensors, mask) -> Optional[str]:
    """The first parameter with a non-zero entry where `mask` prunes it (None: all pruned entries are zero)."""
    for name, m in mask.items():
        t = tensors.get(name)
        if t is not None and bool((t.detach()[~m.to(t.device)] != 0).any()):
            return name
    return None


def verify_pruned_weights_zero(params, mask, fairseq_optimizer, what: str) -> List[str]:
    """Check that every weight `mask` prunes is exactly zero in `params` and, under --fp16/--bf16, in the fp32
    master copies that FP16Optimizer steps and writes back to the model (a weight revived there reaches the
    model at the next step). Returns where it looked; a violation is a bug in the enforcement, so it raises."""
    held = {"model": params}
    masters = masters_by_name(params, fairseq_optimizer)
    if masters:
        held["fp32 master copy"] = masters
    for where, tensors in held.items():
        name = first_revived(tensors, mask)
        if name is not None:
            raise LotteryError(f"{what}: pruned weights of {name} are non-zero in the {where}; the masks were "
                               f"not enforced")
    return list(held)
