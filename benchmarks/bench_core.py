"""Core benchmark on a Transformer-base-shaped model (~61M parameters), all figures printed.

1. One global pruning round (p=0.2): time and peak extra memory of lth_plugins' global magnitude pruner against
   torch.nn.utils.prune.global_unstructured(..., L1Unstructured, amount=0.2) on the same model.
2. One Adam step with masks enforced (hooks) against a dense one: the optimizer step alone and a whole training
   step (forward, backward, step).

Each memory figure is measured in a fresh process (peak RSS over the baseline after the model is built; on a GPU
also the peak of GPU memory allocated over the model's).
Run: python benchmarks/bench_core.py [--threads N] [--device cuda]
"""
import argparse
import json
import multiprocessing as mp
import statistics
import time

import torch
from torch import nn


def build_model():
    torch.manual_seed(0)
    model = nn.ModuleDict({"embed": nn.Embedding(32768, 512),
                           "transformer": nn.Transformer(512, 8, 6, 6, 2048, batch_first=True)})
    return model


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def start_peak():
    """Reset the kernel's peak-RSS counter (Linux clear_refs) and return the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def peak_since(base):
    return _status_bytes("VmHWM") - base


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _gpu_base(device):
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _gpu_extra(device, base):
    return None if base is None else torch.cuda.max_memory_allocated() - base


def _prune_ours(q, threads, device):
    torch.set_num_threads(threads)
    from lth_plugins.masks import Mask
    from lth_plugins.pruners import GlobalMagnitude
    from lth_plugins.selection import select_parameters

    model = build_model().to(device)
    params = select_parameters(model)
    mask = Mask.ones(params)  # the round's mask exists before pruning (round 0's)
    w = torch.randn(1000, device=device)
    GlobalMagnitude().prune({"w": w}, Mask.ones({"w": w}), 0.8)  # warm-up
    gpu = _gpu_base(device)
    base = start_peak()
    t = time.perf_counter()
    GlobalMagnitude().prune(params, mask, 0.8)
    sync(device)
    q.put({"seconds": time.perf_counter() - t, "extra_bytes": peak_since(base), "gpu_extra": _gpu_extra(device, gpu),
           "params": sum(p.numel() for p in params.values()), "surviving": mask.num_surviving()})


def _prune_torch(q, threads, device):
    torch.set_num_threads(threads)
    import torch.nn.utils.prune as prune

    model = build_model().to(device)
    targets = [(m, name) for m in model.modules() for name, p in list(m.named_parameters(recurse=False))]
    gpu = _gpu_base(device)
    base = start_peak()
    t = time.perf_counter()
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=0.2)
    sync(device)
    seconds = time.perf_counter() - t
    extra = peak_since(base)
    kept = sum(int(getattr(m, name + "_mask").sum()) for m, name in targets)
    q.put({"seconds": seconds, "extra_bytes": extra, "gpu_extra": _gpu_extra(device, gpu), "surviving": kept})


def in_fresh_process(fn, threads, device):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(q, threads, device))
    p.start()
    out = q.get()
    p.join()
    return out


def make_trainer(model, masked: bool):
    """An Adam optimizer on `model`, with masks at 20% pruned enforced by hooks when `masked`."""
    from lth_plugins.enforce import MaskEnforcer
    from lth_plugins.masks import Mask
    from lth_plugins.pruners import GlobalMagnitude
    from lth_plugins.selection import select_parameters

    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=0.01)
    enforcer = None
    if masked:
        params = select_parameters(model)
        mask = Mask.ones(params)
        GlobalMagnitude().prune(params, mask, 0.8)
        enforcer = MaskEnforcer(params, mask, opt)
    return opt, enforcer


def one_step(model, opt, batch, device):
    """(optimizer step seconds, whole training step seconds)."""
    src, tgt = batch
    sync(device)
    t0 = time.perf_counter()
    opt.zero_grad()
    h = model["transformer"](model["embed"](src), model["embed"](tgt))
    (h @ model["embed"].weight.t()).logsumexp(-1).mean().backward()
    sync(device)
    t1 = time.perf_counter()
    opt.step()
    sync(device)
    t2 = time.perf_counter()
    return t2 - t1, t2 - t0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16, help="sentences per training step")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per sentence (source and target)")
    parser.add_argument("--device", default="cpu", help="where the model lives: cpu or cuda")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device

    ours = in_fresh_process(_prune_ours, args.threads, dev)
    theirs = in_fresh_process(_prune_torch, args.threads, dev)
    n = ours["params"]
    assert ours["surviving"] == theirs["surviving"] == round(n * 0.8), (ours, theirs)
    where = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"model: {n / 1e6:.1f}M parameters (Embedding 32768x512 + nn.Transformer 512/8 heads/6+6/2048) on {where}")
    print(f"global round p=0.2  lth_plugins: {ours['seconds']:.3f} s, peak extra {ours['extra_bytes'] / n:.2f} B/param")
    print(f"global round p=0.2  torch prune: {theirs['seconds']:.3f} s, peak extra {theirs['extra_bytes'] / n:.2f} B/param")
    if dev.startswith("cuda"):
        print(f"peak extra GPU memory: lth_plugins {ours['gpu_extra'] / n:.2f} B/param, torch prune "
              f"{theirs['gpu_extra'] / n:.2f} B/param (lth_plugins selects on the host, chunk by chunk)")
    speedup = theirs["seconds"] / ours["seconds"]
    goal = " (goal >= 10x, on the CPU)" if dev == "cpu" else ""
    print(f"speedup: {speedup:.1f}x{goal}; transient host memory {ours['extra_bytes'] / n:.2f} B/param (goal <= 2)")

    torch.manual_seed(0)
    batch = tuple(torch.randint(0, 32768, (args.batch, args.tokens), device=dev) for _ in range(2))
    models = {"dense": build_model().to(dev), "masked": build_model().to(dev)}
    trainers = {k: make_trainer(m, k == "masked") for k, m in models.items()}
    opts = {k: t[0] for k, t in trainers.items()}
    enforcer = trainers["masked"][1]
    times = {"dense": [], "masked": []}
    hook_times = []
    pre_step = enforcer.before_step

    def timed_pre_step():  # the optimizer's pre-step hook looks the method up on each step
        sync(dev)
        t0 = time.perf_counter()
        pre_step()
        sync(dev)
        hook_times.append(time.perf_counter() - t0)

    enforcer.before_step = timed_pre_step
    for i in range(args.repeats + 1):  # alternate, so that drift in machine load hits both alike
        for label in ("dense", "masked"):
            t = one_step(models[label], opts[label], batch, dev)
            if i:  # the first step allocates optimizer state
                times[label].append(t)
    med = {k: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for k, v in times.items()}
    (dense_step, dense_train), (masked_step, masked_train) = med["dense"], med["masked"]
    print(f"Adam step alone   dense {dense_step * 1e3:.0f} ms, masked {masked_step * 1e3:.0f} ms: "
          f"overhead {100 * (masked_step / dense_step - 1):+.1f}%  (median of {args.repeats})")
    hook = statistics.median(hook_times)
    rest = ("; the rest is torch's CPU sqrt, slower on the exact zeros that pruned entries keep in Adam's second "
            "moment") if dev == "cpu" else ""
    print(f"  of which the enforcement hook in the step: {hook * 1e3:.2f} ms = {100 * hook / dense_step:.2f}% "
          f"(Adam is zero-preserving: no pass over the weights){rest}")
    print(f"training step     dense {dense_train * 1e3:.0f} ms, masked {masked_train * 1e3:.0f} ms: "
          f"overhead {100 * (masked_train / dense_train - 1):+.1f}% (goal <= 3%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": where, "params": n, "ours": ours, "torch_prune": theirs, "speedup": speedup,
                       "adam_step_overhead": masked_step / dense_step - 1, "hook_seconds": hook,
                       "train_step_overhead": masked_train / dense_train - 1}, f, indent=2)


if __name__ == "__main__":
    main()
