"""The parts of `benchmarks/gpu_checks.sh`, most valuable first, each a process with its own time limit inside
one budget: a cut run still answers the first questions. Writes gpu_checks.log (everything printed),
gpu_checks.json (every figure, rewritten after each part) and elf_learning_curve.png into OUT.

    python benchmarks/gpu_parts.py OUT [--budget 500]   # on the GPU
    python benchmarks/gpu_parts.py OUT --dry-run        # no CUDA: each part's set-up at toy sizes
"""
import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ELF_PAPER = ["--rom_file", "breakout.bin", "--num_games", "1024", "--batchsize", "128", "--T", "6"]
ELF_TOY = ["--rom_file", "breakout.bin", "--num_games", "16", "--batchsize", "4", "--T", "6"]
MIN_PART_S = 20  # a part given less than this is not started
# the CPU builds the same 60M-parameter models far slower than a GPU, and the test suite runs the dry run niced
# beside its other tests
DRY_RUN_MIN_S = 900


def bench_core(dev, tmp, name, extra):
    return [PY, "benchmarks/bench_core.py", "--device", dev, *extra, "--json", str(tmp / f"{name}.json")]


def part_commands(dry: bool, tmp: Path):
    """(key, question, seconds allowed, argv) in order of value."""
    dev = "cpu" if dry else "cuda"
    pytest_args = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                   "tests/fairseq/test_fairseq_mixed_precision.py", "-k", "gpu or master"]
    elf_dir = tmp / "elf"
    return [
        ("masked_step", "masked vs dense training step, Transformer-base (goal: ratio <= 1.03)", 60,
         bench_core(dev, tmp, "masked_step", ["--skip-pruning", *(
             ["--repeats", "1", "--warmup", "0", "--batches", "2x8", "--layers", "1"] if dry else
             ["--repeats", "30", "--warmup", "3", "--batches", "16x64", "64x64"])])),
        ("mixed_precision", "fp16, memory-efficient fp16, AMP lottery rounds: pruned weights zero in the model and "
         "the fp32 master copies", 120, pytest_args + (["--collect-only"] if dry else ["-n", "3"])),
        ("pruning_round", "one global pruning round on GPU-resident weights vs torch.nn.utils.prune", 100,
         bench_core(dev, tmp, "pruning_round", (
             ["--prune-pairs", "1", "--batches", "2x8", "--repeats", "1", "--warmup", "0", "--layers", "1"] if dry else
             ["--prune-pairs", "2", "--batches", "16x64", "--repeats", "1", "--warmup", "1"]))),
        ("slurm_init", "fairseq's own SLURM initialisation on one GPU runs the lottery round", 75,
         [PY, "benchmarks/gpu_slurm_init.py", *(["--dry-run"] if dry else [])]),
        ("updates_per_s", "fairseq updates/s, lottery round 1 / plain, --fp16 --max-tokens 4096 (goal: steady "
         "state >= 0.99)", 180,
         [PY, "benchmarks/bench_fairseq.py", "--pairs", *(
             ["1", "--warmup-pairs", "0", "--pruned", "0.2", "--max-update", "1", "--n-train", "200",
              "--model", "tiny"] if dry else
             ["2", "--warmup-pairs", "0", "--pruned", "0.2", "0.8", "--max-update", "60", "--n-train", "8000",
              "--model", "base", "--max-tokens", "4096", "--precision", "fp16", "--gpu"])]),
        ("elf_speed", "ELF Breakout at the paper's settings: game steps/s dense vs 20% pruned, masks held", 120,
         [PY, "-m", "elf_ext.train", *ELF_TOY, "--lottery_prune", "--lottery_rounds", "1", "--lottery_epochs", "2",
          "--lottery_epoch_batches", "1", "--lottery_run_dir", str(elf_dir)] if dry else
         [PY, "benchmarks/bench_elf.py", "gpu", "--gpu", "0", "--epoch-batches", "40", "--out", str(elf_dir)]),
        # the last part: it trains until the budget ends, the curve being what it had by then
        ("elf_curve", "a dense ELF Breakout run: mean game score per epoch against time (does it rise above that "
         "of the first epoch with finished games, a near-random policy?)", 10_000,
         [PY, "-m", "elf_ext.train", *(ELF_TOY if dry else [*ELF_PAPER, "--gpu", "0"]), "--lottery_prune",
          "--lottery_rounds", "1", "--lottery_epochs", "2" if dry else "1000", "--lottery_epoch_batches",
          "1" if dry else "20", "--lottery_run_dir", str(tmp / "elf_curve")]),
    ]


def spread(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    r = {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "min": xs[0], "max": xs[-1]}
    return {**{k: round(v, 4) for k, v in r.items()}, "n": len(xs)}


def number(text):
    """A float, None for nan (the JSON stays strict)."""
    x = float(text)
    return None if math.isnan(x) else x


def figures_of(key, out_text, tmp, t_lines):
    """The figures a part's output holds (the part's own JSON where it writes one)."""
    f = {}
    if key in ("masked_step", "pruning_round") and (tmp / f"{key}.json").is_file():
        data = json.loads((tmp / f"{key}.json").read_text())
        f["device"] = data.get("device")
        if key == "masked_step":
            f["steps"] = {b: {"dense_ms": spread([1e3 * x for x in s["dense_s"]]),
                              "masked_ms": spread([1e3 * x for x in s["masked_s"]]),
                              "ratio": spread(s["ratios"]), "enforcement_ops": s["ops"]}
                          for b, s in data["steps"].items()}
        else:
            f.update({k: data[k] for k in ("params", "ours", "torch_prune", "speedups", "memory") if k in data})
    elif key == "mixed_precision":
        for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", out_text):
            f[what.rstrip("s")] = int(n)
        selected = re.findall(r"(\d+)(?:/\d+)? tests? collected", out_text)  # --collect-only
        if selected:
            f["collected"] = int(selected[-1])
    elif key == "slurm_init":
        f["init"] = re.findall(r"(?:distributed init \(rank \d+\)|init method) (tcp://\S+)", out_text)[:1]
        f["held"] = re.findall(r"round \d+: (all \d+ pruned weights are zero in .*)", out_text)
    elif key == "updates_per_s":
        for frac, loop, steady in re.findall(r"round 1 at (\d+)% pruned / plain.*?whole loop median ([0-9.na]+).*?"
                                             r"steady state median ([0-9.na]+)", out_text):
            f[f"{frac}%"] = {"whole_loop_ratio": number(loop), "steady_state_ratio": number(steady)}
        f["pairs"] = re.findall(r"^pair .*", out_text, re.M)
        f["held"] = re.findall(r"end-of-round check: (.*)", out_text)
    elif key == "elf_speed":
        f["rounds"] = re.findall(r"^round \d+: .*game steps/s.*", out_text, re.M)
        f["gpu_memory"] = re.findall(r"^GPU memory .*", out_text, re.M)
        f["masks_held"] = len(re.findall(r"pruned weights are zero|masks? held", out_text))
    elif key == "elf_curve":
        curve = []
        for t, line in t_lines:
            m = re.search(r"round 0\] epoch (\d+)/\d+: (\d+)/\d+ batches, (\d+) games finished "
                          r"\(mean score ([0-9.-]+)\), ([0-9.]+) steps/s", line)
            if m:
                curve.append({"epoch": int(m[1]), "batches": int(m[2]), "games": int(m[3]),
                              "mean_score": None if m[4] == "-" else float(m[4]), "steps_per_s": float(m[5]),
                              "seconds": round(t, 1)})
        f["curve"] = curve  # round 0: dense
    return f


def gpu_name():
    """The card, its driver and memory as nvidia-smi names them (no CUDA context here: the parts' memory readings
    would count it)."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class GpuMemory(threading.Thread):
    """The most GPU memory nvidia-smi reports in use while a part runs (MiB)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = None, threading.Event()

    def run(self):
        while not self.stop.wait(2):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout.split()
                self.peak = max([self.peak or 0, *map(int, out[:1])])
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return


def run_part(argv, seconds, log, env):
    """Run `argv` for at most `seconds`; (exit code or None when cut, output, [(t, line)])."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, bufsize=1)
    timer = threading.Timer(seconds, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer.start()
    lines = []
    for line in p.stdout:
        lines.append((time.monotonic() - t0, line.rstrip("\n")))
        log(line.rstrip("\n"))
    rc = p.wait()
    cut = not timer.is_alive() and rc < 0
    timer.cancel()
    return (None if cut else rc), "\n".join(x for _, x in lines), lines


def plot_curve(curve, path: Path, title: str) -> int:
    """Mean score per epoch against time, as a PNG; the number of points (epochs with a finished game)."""
    points = [(c["seconds"], c["mean_score"]) for c in curve if c["mean_score"] is not None]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if points:
        ax.plot(*zip(*points), marker="o")
        ax.axhline(points[0][1], color="grey", linestyle="--", label="first epoch with a finished game")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no game finished", ha="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("mean game score of the epoch")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(points)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--budget", type=float, default=500, help="seconds for all parts together")
    ap.add_argument("--dry-run", action="store_true", help="no CUDA: each part's set-up at toy sizes")
    ap.add_argument("--only", nargs="+", help="run only these parts")
    a = ap.parse_args()
    keys = [p[0] for p in part_commands(a.dry_run, Path("."))]
    unknown = sorted(set(a.only or ()) - set(keys))
    if unknown:
        ap.error(f"no part named {', '.join(unknown)}; the parts: {', '.join(keys)}")
    a.out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="gpu_parts_"))
    logf = open(a.out / "gpu_checks.log", "a", buffering=1)

    def log(line):
        print(line, flush=True)
        logf.write(line + "\n")

    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "4"))
    env.pop("LTH_REQUIRE_FRAMEWORK_TESTS", None)  # the nested pytest is no CI run
    if a.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if not a.dry_run and not torch.cuda.is_available():
        sys.exit("no CUDA device here: the GPU run needs one (--dry-run sets the parts up on the CPU)")
    report = {"mode": "dry run (no CUDA)" if a.dry_run else "GPU", "python": sys.version.split()[0],
              "torch": torch.__version__,
              "device": "none (CPU)" if a.dry_run else gpu_name(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_s": a.budget}
    for dist in ("lth-plugins", "fairseq-fixed", "elf-rl", "ale-py", "gymnasium"):
        try:
            report[dist] = version(dist)
        except PackageNotFoundError:  # recorded, not fatal: the parts say what they miss
            report[dist] = "missing"
    report["parts"] = {}
    log(f"== gpu checks: {json.dumps({k: v for k, v in report.items() if k != 'parts'})}")
    json_path = a.out / "gpu_checks.json"
    failed = []
    for key, question, seconds, argv in part_commands(a.dry_run, tmp):
        if a.only and key not in a.only:
            continue
        left = a.budget - (time.monotonic() - t_start)
        entry = {"question": question}
        report["parts"][key] = entry
        if left < MIN_PART_S:
            entry["status"] = f"not run: {left:.0f} s of the budget left"
            failed.append(key)
            log(f"== {key}: {entry['status']}")
            continue
        allowed = min(max(seconds, DRY_RUN_MIN_S) if a.dry_run else seconds, left)
        log(f"== {key} (at most {allowed:.0f} s): {question}")
        mem = GpuMemory() if not a.dry_run else None
        if mem:
            mem.start()
        t0 = time.monotonic()
        rc, text, lines = run_part(argv, allowed, log, env)
        entry["seconds"] = round(time.monotonic() - t0, 1)
        if mem:
            mem.stop.set()
            entry["nvidia_smi_peak_mib"] = mem.peak
        entry["status"] = ("ok" if rc == 0 else f"failed (exit {rc})" if rc is not None else
                           f"ran until its {allowed:.0f} s ended")
        try:
            entry.update(figures_of(key, text, tmp, lines))
        except Exception as e:  # noqa: BLE001  (a figure that cannot be read must not lose the others)
            entry["figures_error"] = f"{type(e).__name__}: {e}"
        if key == "elf_curve":
            points = plot_curve(entry.get("curve", []), a.out / "elf_learning_curve.png",
                                f"ELF Breakout, dense, {report['device']}")
            if rc is None and points:  # trained until the budget ended, as meant
                entry["status"] = f"ok (trained {entry['seconds']:.0f} s)"
            elif not points and not a.dry_run:  # the dry run's toy epochs finish no game
                entry["status"] = f"failed: no epoch with a finished game ({entry['status']})"
        if not entry["status"].startswith("ok"):
            failed.append(key)
        json_path.write_text(json.dumps(report, indent=1))
        log(f"== {key}: {entry['status']} after {entry['seconds']} s")
    report["total_s"] = round(time.monotonic() - t_start, 1)
    json_path.write_text(json.dumps(report, indent=1))
    log(f"== done in {report['total_s']} s; not ok: {', '.join(failed) or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
