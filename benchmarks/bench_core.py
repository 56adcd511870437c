"""Core benchmark on a Transformer-base-shaped model (~61M parameters), all figures printed.

1. One global pruning round (p=0.2): time and peak extra memory against torch.nn.utils.prune.global_unstructured,
   in interleaved pairs of fresh processes: the median time of each and of the per-pair speedups, with the spread.
2. Memory the mask enforcement adds, at 20%, 50% and 90% pruned (host RSS; on a GPU, GPU memory allocated).
3. Masked against dense training steps (forward, backward, Adam) at each batch size asked for, in interleaved pairs:
   the median of the per-pair ratios with its spread, warm-up pairs left out.
4. The enforcement's tensor operations per pruned parameter in one training step (torch's profiler).
Memory figures are measured in fresh processes.
Run: python benchmarks/bench_core.py [--threads N] [--device cuda] [--batches 16x64 64x64] [--prune-pairs 5]
"""
import argparse
import json
import multiprocessing as mp
import statistics
import time

import torch
from torch import nn


LAYERS = 6  # Transformer-base: 6 encoder and 6 decoder layers


def build_model(layers: int = LAYERS):
    torch.manual_seed(0)
    model = nn.ModuleDict({"embed": nn.Embedding(32768, 512),
                           "transformer": nn.Transformer(512, 8, layers, layers, 2048, batch_first=True)})
    return model


def describe(layers: int) -> str:
    return f"Embedding 32768x512 + nn.Transformer 512/8 heads/{layers}+{layers}/2048"


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


def _prune_ours(q, threads, device, layers):
    torch.set_num_threads(threads)
    from lth_plugins.masks import Mask
    from lth_plugins.pruners import GlobalMagnitude
    from lth_plugins.selection import select_parameters

    model = build_model(layers).to(device)
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


def _prune_torch(q, threads, device, layers):
    torch.set_num_threads(threads)
    import torch.nn.utils.prune as prune

    model = build_model(layers).to(device)
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


def in_fresh_process(fn, threads, device, *extra):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(q, threads, device, *extra))
    p.start()
    out = q.get()
    p.join()
    return out


def _enforcer_memory(q, threads, device, layers, pruned):
    """Bytes per weight the enforcer adds over the round's mask (which the run holds anyway)."""
    torch.set_num_threads(threads)
    from lth_plugins.enforce import MaskEnforcer
    from lth_plugins.masks import Mask
    from lth_plugins.pruners import GlobalMagnitude
    from lth_plugins.selection import select_parameters

    model = build_model(layers).to(device)
    params = select_parameters(model)
    mask = Mask.ones(params)
    GlobalMagnitude().prune(params, mask, 1.0 - pruned)
    gpu = _gpu_base(device)
    base = start_peak()
    enforcer = MaskEnforcer(params, mask, torch.optim.Adam(model.parameters()))
    sync(device)
    q.put({"host": peak_since(base), "gpu": _gpu_extra(device, gpu), "params": sum(p.numel() for p in params.values()),
           "mask_host": sum(m.numel() * m.element_size() for m in mask.values()), "holds": enforcer.device_bytes()})


def make_trainer(model, masked: bool, pruned: float = 0.2):
    """An Adam optimizer on `model`, with masks at `pruned` enforced by hooks when `masked`."""
    from lth_plugins.enforce import MaskEnforcer
    from lth_plugins.masks import Mask
    from lth_plugins.pruners import GlobalMagnitude
    from lth_plugins.selection import select_parameters

    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=0.01)
    enforcer = None
    if masked:
        params = select_parameters(model)
        mask = Mask.ones(params)
        GlobalMagnitude().prune(params, mask, 1.0 - pruned)
        enforcer = MaskEnforcer(params, mask, opt)
    return opt, enforcer


def one_step(model, opt, batch, device) -> float:
    """Seconds of one whole training step (zero_grad, forward, backward, Adam step)."""
    src, tgt = batch
    sync(device)
    t0 = time.perf_counter()
    opt.zero_grad()
    h = model["transformer"](model["embed"](src), model["embed"](tgt))
    (h @ model["embed"].weight.t()).logsumexp(-1).mean().backward()
    opt.step()
    sync(device)
    return time.perf_counter() - t0


ENFORCEMENT_OPS = ("aten::mul_", "aten::_foreach_mul_", "aten::index_fill_", "aten::index_select",
                   "aten::index_copy_", "aten::masked_fill_", "aten::zero_", "aten::where", "aten::bitwise_and_",
                   "aten::neg_", "aten::copy_")


def op_count(model, opt, batch, device) -> int:
    """Calls of the tensor operations mask enforcement uses, in one training step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_step(model, opt, batch, device)
    return sum(e.count for e in prof.key_averages() if e.key in ENFORCEMENT_OPS)


def step_ratios(args, dev, tokens_batch):
    """Interleaved dense/masked training steps: per pair the ratio masked/dense; the first pairs are warm-up."""
    n_sent, n_tok = tokens_batch
    torch.manual_seed(0)
    batch = tuple(torch.randint(0, 32768, (n_sent, n_tok), device=dev) for _ in range(2))
    models = {"dense": build_model(args.layers).to(dev), "masked": build_model(args.layers).to(dev)}
    opts = {k: make_trainer(m, k == "masked")[0] for k, m in models.items()}
    dense, masked, ratios = [], [], []
    for i in range(args.warmup + args.repeats):  # alternating, so drifts in machine load hit both sides
        d = one_step(models["dense"], opts["dense"], batch, dev)
        m = one_step(models["masked"], opts["masked"], batch, dev)
        if i >= args.warmup:
            dense.append(d)
            masked.append(m)
            ratios.append(m / d)
    ops = op_count(models["masked"], opts["masked"], batch, dev) - op_count(models["dense"], opts["dense"], batch, dev)
    return dense, masked, ratios, ops


def spread(xs):
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"median {statistics.median(xs):.3f}, quartiles {q[0]:.3f}-{q[2]:.3f}, range {min(xs):.3f}-{max(xs):.3f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="timed pairs of steps per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="pairs of steps run first and not timed")
    parser.add_argument("--batches", nargs="+", default=["16x64"], metavar="SENTENCESxTOKENS",
                        help="batch sizes of the step comparison (e.g. 16x64 64x64)")
    parser.add_argument("--device", default="cpu", help="where the model lives: cpu or cuda")
    parser.add_argument("--prune-pairs", type=int, default=5, help="timed pairs of pruning rounds (ours, torch's)")
    parser.add_argument("--skip-pruning", action="store_true", help="leave out the pruning round and memory parts")
    parser.add_argument("--layers", type=int, default=LAYERS, help="encoder and decoder layers each (fewer: a quicker "
                        "set-up check, not the benchmark's figures)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.layers < 1:
        parser.error("--layers must be at least 1")
    torch.set_num_threads(args.threads)
    dev = args.device
    where = torch.cuda.get_device_name() if dev.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    figures = {"device": where, "model": describe(args.layers)}

    if not args.skip_pruning:
        pairs = []  # interleaved, each in a fresh process, so that drifts in machine load hit both sides
        for _ in range(args.prune_pairs):
            pairs.append((in_fresh_process(_prune_ours, args.threads, dev, args.layers),
                          in_fresh_process(_prune_torch, args.threads, dev, args.layers)))
        ours, theirs = pairs[0]
        n = ours["params"]
        assert all(o["surviving"] == t["surviving"] == round(n * 0.8) for o, t in pairs), pairs
        ours = {"seconds": statistics.median(o["seconds"] for o, _ in pairs), "params": n,
                "extra_bytes": max(o["extra_bytes"] for o, _ in pairs), "gpu_extra": ours["gpu_extra"]}
        theirs = {"seconds": statistics.median(t["seconds"] for _, t in pairs),
                  "extra_bytes": max(t["extra_bytes"] for _, t in pairs), "gpu_extra": theirs["gpu_extra"]}
        speedups = [t["seconds"] / o["seconds"] for o, t in pairs]
        print(f"model: {n / 1e6:.1f}M parameters ({describe(args.layers)}) on {where}")
        print(f"global round p=0.2, {len(pairs)} interleaved pairs (fresh processes), medians; peak extra memory: "
              f"the largest")
        print(f"  lth_plugins: {ours['seconds']:.3f} s ({spread([o['seconds'] for o, _ in pairs])}), peak extra "
              f"{ours['extra_bytes'] / n:.2f} B/param")
        print(f"  torch prune: {theirs['seconds']:.3f} s ({spread([t['seconds'] for _, t in pairs])}), peak extra "
              f"{theirs['extra_bytes'] / n:.2f} B/param")
        if dev.startswith("cuda"):
            print(f"peak extra GPU memory: lth_plugins {ours['gpu_extra'] / n:.2f} B/param, torch prune "
                  f"{theirs['gpu_extra'] / n:.2f} B/param (lth_plugins selects on the host, chunk by chunk)")
        speedup = statistics.median(speedups)
        print(f"speedup per pair: {spread(speedups)} (goal >= 25x, on the CPU); transient host memory "
              f"{ours['extra_bytes'] / n:.2f} B/param (goal <= 2)")
        figures.update(params=n, ours=ours, torch_prune=theirs, speedup=speedup, speedups=speedups, memory={})
        for pruned in (0.2, 0.5, 0.9):
            mem = in_fresh_process(_enforcer_memory, args.threads, dev, args.layers, pruned)
            figures["memory"][pruned] = mem
            gpu = f", GPU {mem['gpu'] / n:.2f} B/weight" if mem["gpu"] is not None else ""
            print(f"mask enforcement at {100 * pruned:.0f}% pruned: holds {mem['holds'] / n:.2f} B/weight on the "
                  f"{dev.split(':')[0].upper()} (host RSS added {mem['host'] / n:.2f} B/weight{gpu}); the round's "
                  f"mask itself {mem['mask_host'] / n:.2f} B/weight on the host (goal <= 1 on the training device)")

    figures["steps"] = {}
    for spec in args.batches:
        shape = tuple(int(x) for x in spec.lower().split("x"))
        dense, masked, ratios, ops = step_ratios(args, dev, shape)
        n_pruned = sum(1 for _ in build_model(args.layers).parameters())  # every parameter has pruned entries at 20%
        print(f"training step {spec} ({shape[0] * shape[1]} tokens) of {describe(args.layers)}, 20% pruned, "
              f"{args.repeats} interleaved pairs after {args.warmup} warm-up: dense median "
              f"{statistics.median(dense) * 1e3:.0f} ms, masked {statistics.median(masked) * 1e3:.0f} ms; ratio "
              f"masked/dense {spread(ratios)} (goal <= 1.01 on the CPU, 1.03 on a GPU); enforcement ops per step "
              f"{ops} = {ops / n_pruned:.2f} per pruned parameter")
        figures["steps"][spec] = {"dense_s": dense, "masked_s": masked, "ratios": ratios, "ops": ops,
                                  "ops_per_pruned_parameter": ops / n_pruned}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
