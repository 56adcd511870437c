"""ELF Atari: speed with the plugin vs plain ELF, where the time goes, disk per run, the GPU check, and a reduced
Breakout WT/RT experiment.

    python benchmarks/bench_elf.py speed        # game steps/s: plugin rounds vs plain ELF vs ELF's actor_critic
    python benchmarks/bench_elf.py disk         # bytes a run keeps at the paper's settings (default retention)
    python benchmarks/bench_elf.py gpu --gpu 0  # paper settings on a GPU for a few minutes (benchmarks/gpu_checks.sh)
    python benchmarks/bench_elf.py experiment   # reduced Breakout WT and RT: per-round reward table + lth report

speed: the same ELF settings and number of training batches, each in its own process with the default threads of
``python -m elf_ext.train`` (``--threads N`` to force): plain ELF (ELF's Trainer and ModelInterface, no plugin)
with the paper's network, timed around each callback (acting forward, training step, waiting for the games,
the rest); ELF's own ``actor_critic`` model the same way; the plugin's round 0 (dense) and round 1 (20% pruned,
reset to init: the same number of batches).
Beside them the compute of the two networks: forward FLOPs per frame stack and measured forward time. Game
steps/s = acting batches x batch size per second (x the frame skip of 2-4 frames per step = frames/s).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SPEED = ["--rom_file", "breakout.bin", "--num_games", "16", "--batchsize", "4", "--T", "6"]
EPOCHS = 2
PAPER = ["--rom_file", "breakout.bin", "--num_games", "1024", "--batchsize", "128", "--T", "6"]
PAPER_ROUNDS = 20  # pruning rounds after the dense round 0 (rate 0.2: 98.8% pruned at round 20)


def _env(**extra):
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)


def _threads_flags(threads):
    return ["--torch_threads", str(threads)] if threads else []


def plain_child(out: str, epoch_batches: int, argv) -> None:
    """ELF's train.py loop for EPOCHS x epoch_batches training batches, timed (runs in its own process)."""
    from elf_ext import train  # first: OpenMP's wait policy before torch loads

    import torch
    from rlpytorch import SingleProcessRun, Trainer

    from elf_ext.flags import RunArgs

    trainer, run_args = Trainer(), RunArgs()
    env, args = train.load_env(train.resolve_environ(os.environ), argv, trainer=trainer, runner=SingleProcessRun(),
                               run=run_args)
    torch.set_num_threads(train.torch_threads(run_args.args.torch_threads))
    torch.manual_seed(0)
    GC = env["game"].initialize()
    model = env["model_loaders"][0].load_model(GC.params)
    env["mi"].add_model("model", model, opt=True)
    env["mi"].add_model("actor", model, copy=True)
    trainer.setup(sampler=env["sampler"], mi=env["mi"], rl_method=env["method"])
    count = {"train": 0, "steps": 0, "actor_s": 0.0, "train_s": 0.0}

    def train_cb(batch):
        t0 = time.perf_counter()
        trainer.train(batch)
        count["train_s"] += time.perf_counter() - t0
        count["train"] += 1
        if count["train"] % epoch_batches == 0:
            trainer.episode_summary(count["train"] // epoch_batches)

    def actor_cb(batch):
        t0 = time.perf_counter()
        count["steps"] += batch["s"].size(1)
        reply = trainer.actor(batch)
        count["actor_s"] += time.perf_counter() - t0
        return reply

    GC.reg_callback("train", train_cb)
    GC.reg_callback("actor", actor_cb)
    trainer.episode_start(0)
    GC.Start()
    wait = 0.0
    t0, cpu0 = time.monotonic(), time.process_time()
    while count["train"] < EPOCHS * epoch_batches:
        w = time.perf_counter()
        infos = GC.GC.Wait(0)  # GCWrapper.Run, with the wait for the games timed
        wait += time.perf_counter() - w
        GC._call(infos)
        GC.GC.Steps(infos)
    wall = time.monotonic() - t0
    Path(out).write_text(json.dumps({
        "steps_per_s": count["steps"] / wall, "steps": count["steps"], "wall_s": wall,
        "cpu_s": time.process_time() - cpu0, "threads": torch.get_num_threads(),
        "share": {"acting forward": count["actor_s"] / wall, "training step": count["train_s"] / wall,
                  "waiting for games": wait / wall,
                  "rest (ELF's Python, batching)": 1 - (count["actor_s"] + count["train_s"] + wait) / wall},
        "params": sum(p.numel() for p in model.parameters())}))
    sys.stdout.flush()
    os._exit(0)


def run_plain(tmp: Path, epoch_batches: int, threads: int, model_file=None, model=None) -> dict:
    out = tmp / f"plain_{time.monotonic_ns()}.json"
    extra = dict(model_file=model_file, model=model) if model_file else {}
    p = subprocess.run([sys.executable, __file__, "_plain", str(out), str(epoch_batches), "--", *SPEED,
                        "--save_dir", str(tmp), "--trainer_stats", "rewards", "--additional_labels",
                        "id,last_terminal", "--keys_in_reply", "V,rv", *_threads_flags(threads)],
                       capture_output=True, text=True, env=_env(**extra), cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"plain ELF run failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_plugin(tmp: Path, epoch_batches: int, threads: int) -> dict:
    run_dir = tmp / f"plugin_{time.monotonic_ns()}"
    # reset to init: round 1 trains the same EPOCHS x epoch_batches as round 0 and plain ELF
    p = subprocess.run([sys.executable, "-m", "elf_ext.train", *SPEED, "--lottery_prune", "--lottery_rounds", "1",
                        "--lottery_reset", "init", "--lottery_epochs", str(EPOCHS), "--lottery_epoch_batches", str(epoch_batches),
                        "--lottery_run_dir", str(run_dir), *_threads_flags(threads)],
                       capture_output=True, text=True, env=_env(), cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"plugin run failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    rounds = [json.loads((run_dir / f"round_{k:02d}" / "metrics.json").read_text()) for k in (0, 1)]
    return {"dense": rounds[0]["metrics"]["steps_per_s"], "pruned": rounds[1]["metrics"]["steps_per_s"],
            "fraction_pruned": rounds[1]["fraction_pruned"]}


def elf_own_model_file():
    from elf_ext.paths import atari_game_file

    model = Path(atari_game_file()).with_name("model.py")
    return str(model)[:-3] if model.is_file() else None


def network_compute(batch: int, threads: int) -> dict:
    """Forward FLOPs per frame stack (Breakout: 4 actions, 4 frames) and measured forward time at `batch`, for the
    paper's network and ELF's own actor_critic model."""
    from elf_ext import train  # noqa: F401  (OpenMP's wait policy before torch loads)

    import torch
    from rlpytorch.model_loader import load_module
    from torch.utils.flop_counter import FlopCounterMode

    from elf_ext.network import LotteryAtariNet

    class Args:
        params = dict(hist_len=4, num_action=4)

    torch.set_num_threads(train.torch_threads(threads))
    nets = {"paper network": LotteryAtariNet(Args())}
    own = elf_own_model_file()
    if own:
        nets["ELF's actor_critic"] = load_module(own).Models["actor_critic"][0](Args())
    out = {}
    for name, net in nets.items():
        x = {"s": torch.rand(batch, 12, 105, 80)}
        with torch.no_grad():
            with FlopCounterMode(display=False) as fc:
                net({"s": x["s"][:1]})
            net(x)
            t0, reps = time.perf_counter(), 10
            for _ in range(reps):
                net(x)
        out[name] = {"gflop_per_stack": fc.get_total_flops() / 1e9,
                     "forward_ms": (time.perf_counter() - t0) / reps * 1000,
                     "params": sum(p.numel() for p in net.parameters())}
    return out


def speed(repeats: int, epoch_batches: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        plain, dense, pruned, own, shares = [], [], [], [], []
        own_file = elf_own_model_file()
        for i in range(repeats):  # interleaved, so that load from other jobs hits all alike
            load = os.getloadavg()[0]
            r = run_plain(tmp, epoch_batches, threads)
            plain.append(r["steps_per_s"])
            shares.append(r["share"])
            p = run_plugin(tmp, epoch_batches, threads)
            dense.append(p["dense"])
            pruned.append(p["pruned"])
            if own_file:
                own.append(run_plain(tmp, epoch_batches, threads, own_file, "actor_critic")["steps_per_s"])
            print(f"repeat {i + 1}/{repeats} (load {load:.1f}): plain {plain[-1]:.1f}, plugin dense {dense[-1]:.1f}, "
                  f"plugin 20% pruned {pruned[-1]:.1f}" + (f", ELF's actor_critic {own[-1]:.1f}" if own else "")
                  + f" game steps/s ({r['threads']} torch threads)", flush=True)
        med = statistics.median
        print(f"\nsettings: {' '.join(SPEED)}, {EPOCHS} x {epoch_batches} training batches, "
              f"{r['threads']} torch threads; median of {repeats}")
        print(f"plain ELF, paper network:          {med(plain):8.1f} game steps/s")
        print(f"plugin round 0 (dense):            {med(dense):8.1f} game steps/s  ratio {med(dense) / med(plain):.3f} "
              f"(goal >= 0.95)")
        print(f"plugin round 1 (20% pruned):       {med(pruned):8.1f} game steps/s  ratio "
              f"{med(pruned) / med(plain):.3f} (goal >= 0.95)")
        if own:
            print(f"plain ELF, ELF's actor_critic:     {med(own):8.1f} game steps/s  (paper network / this: "
                  f"{med(plain) / med(own):.3f})")
        print("where plain ELF's time goes (paper network, median share of the wall time):")
        for key in shares[0]:
            print(f"  {key:32s} {100 * med(s[key] for s in shares):5.1f}%")
        compute = network_compute(4, threads)
        for name, c in compute.items():
            print(f"{name:20s} {c['params']:>10,} parameters, {c['gflop_per_stack']:.3f} GFLOP per forward of one "
                  f"frame stack, {c['forward_ms']:.1f} ms per forward of 4")
        if len(compute) == 2:
            a, b = compute.values()
            print(f"compute ratio paper / ELF's: {a['gflop_per_stack'] / b['gflop_per_stack']:.2f}x FLOPs, "
                  f"{a['forward_ms'] / b['forward_ms']:.2f}x forward time")


def resume_point_bytes(tmp: Path) -> int:
    """Bytes of a round's resume point at the paper's network: its weights and Adam's state after a step."""
    from elf_ext import train  # noqa: F401  (OpenMP's wait policy before torch loads)

    import torch

    from elf_ext.network import LotteryAtariNet

    class Args:
        params = dict(hist_len=4, num_action=4)

    net = LotteryAtariNet(Args())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-3)
    out = net({"s": torch.rand(1, 12, 105, 80)})
    (out["pi"].sum() + out["V"].sum()).backward()
    opt.step()
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, tmp / "resume.pt")
    return (tmp / "resume.pt").stat().st_size


def disk(keep: int) -> None:
    """Run 2 tiny rounds of the paper's network (the files a run keeps depend on the network, not on the games),
    then scale to the paper's 20 pruning rounds: what stays once the run is done, and the most a running round
    adds (its resume point and the checkpoint being written)."""
    with tempfile.TemporaryDirectory() as d:
        run_dir = Path(d) / "run"
        p = subprocess.run([sys.executable, "-m", "elf_ext.train", "--rom_file", "breakout.bin", "--num_games", "8",
                            "--batchsize", "4", "--lottery_prune", "--lottery_rounds", "2", "--lottery_epochs", "2",
                            "--lottery_epoch_batches", "2", "--lottery_keep_checkpoints", str(keep),
                            "--lottery_run_dir", str(run_dir), "--torch_threads", "1"],
                           capture_output=True, text=True, env=_env(), cwd=REPO)
        if p.returncode != 0:
            raise SystemExit(f"run failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        files = {str(f.relative_to(run_dir)): f.stat().st_size for f in run_dir.rglob("*")
                 if f.is_file() and not f.is_symlink()}
        resume_bytes = resume_point_bytes(Path(d))
    per_round = {"ELF checkpoints (elf/round_KK)": sum(v for k, v in files.items() if k.startswith("elf/round_01/")),
                 "mask + records (round_KK)": sum(v for k, v in files.items() if k.startswith("round_01/"))}
    once = {"snapshots (init, late, dense_trained)": sum(v for k, v in files.items() if k.startswith("snapshots/")),
            "round 0 (ELF checkpoints, records)": sum(v for k, v in files.items()
                                                      if k.startswith(("elf/round_00/", "round_00/"))),
            "config, log": sum(v for k, v in files.items() if "/" not in k)}
    total = sum(once.values()) + PAPER_ROUNDS * sum(per_round.values())
    mb = 1e6
    print(f"files of a run at the paper's settings ({PAPER_ROUNDS} pruning rounds, "
          f"--lottery_keep_checkpoints {keep}):")
    for k, v in once.items():
        print(f"  {k:40s} {v / mb:8.1f} MB")
    for k, v in per_round.items():
        print(f"  {k:40s} {v / mb:8.2f} MB per round x {PAPER_ROUNDS}")
    print(f"  total once done                          {total / mb:8.1f} MB")
    print(f"  a round in progress adds its resume point ({resume_bytes / mb:.1f} MB) and an epoch checkpoint "
          f"({files['elf/round_01/save-4.bin'] / mb:.1f} MB)")
    print(f"  (ELF alone keeps one checkpoint per epoch: 25 x {PAPER_ROUNDS + 1} x "
          f"{files['elf/round_01/save-4.bin'] / mb:.1f} MB = "
          f"{25 * (PAPER_ROUNDS + 1) * files['elf/round_01/save-4.bin'] / 1e9:.1f} GB)")


def gpu(device: int, epoch_batches: int, out: Path) -> int:
    """Breakout at the paper's settings on GPU `device`: round 0 (2 epochs) and round 1 (20% pruned, from the
    late reset after epoch 1), then game steps/s, GPU memory, and the plugin's check of the masks' zeros in the
    model and in ELF's acting copy (it runs at every epoch's end and stops the run if one is not zero)."""
    out.mkdir(parents=True, exist_ok=True)
    run_dir = out / "elf_gpu_run"
    stats = out / "elf_gpu_memory.json"
    code = ("import json, sys, torch; from elf_ext import train; rc = train.main(sys.argv[2:]); "
            "json.dump({'max_allocated': torch.cuda.max_memory_allocated(), "
            "'max_reserved': torch.cuda.max_memory_reserved()}, open(sys.argv[1], 'w')); sys.exit(rc)")
    argv = [*PAPER, "--gpu", str(device), "--lottery_prune", "--lottery_rounds", "1", "--lottery_epochs", "2",
            "--lottery_epoch_batches", str(epoch_batches), "--lottery_last_games", "1024", "--lottery_run_dir",
            str(run_dir)]
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code, str(stats), *argv], env=_env(), cwd=REPO, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    (out / "elf_gpu_run.log").write_text(p.stdout)
    print(f"exit code {p.returncode} after {time.monotonic() - t0:.0f} s; log: {out / 'elf_gpu_run.log'}")
    for line in p.stdout.splitlines():
        if line.startswith(("[elf ", "[lottery ", "error")):
            print(line)
    if p.returncode != 0:
        print(p.stdout[-3000:])
        return p.returncode
    for k in (0, 1):
        m = json.loads((run_dir / f"round_{k:02d}" / "metrics.json").read_text())
        print(f"round {k}: {100 * m['fraction_pruned']:.1f}% pruned, {m['metrics']['steps_per_s']:.0f} game steps/s, "
              f"{m['metrics']['updates']} batches of 128 x T 6, {m['metrics']['games']} games finished, "
              f"ticket reward {m['metrics']['ticket_reward']}")
    mem = json.loads(stats.read_text())
    print(f"GPU memory (torch, this process): max allocated {mem['max_allocated'] / 2**20:.0f} MiB, max reserved "
          f"{mem['max_reserved'] / 2**20:.0f} MiB")
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_plain":
        return plain_child(sys.argv[2], int(sys.argv[3]), sys.argv[sys.argv.index("--") + 1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["speed", "disk", "gpu", "experiment"],
                    help="experiment: examples/small/breakout_fig2.py with its defaults (its flags after --)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epoch-batches", type=int, default=None,
                    help="training batches per epoch (2 epochs; default: speed 25, gpu 100)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: elf_ext.train's default)")
    ap.add_argument("--keep", type=int, default=1, help="disk: --lottery_keep_checkpoints")
    ap.add_argument("--gpu", type=int, default=0, help="gpu: the device")
    ap.add_argument("--out", default="lth_output/bench_elf")
    a, rest = ap.parse_known_args()
    if a.what == "speed":
        speed(a.repeats, a.epoch_batches or 25, a.threads)
    elif a.what == "disk":
        disk(a.keep)
    elif a.what == "gpu":
        sys.exit(gpu(a.gpu, a.epoch_batches or 100, Path(a.out)))
    else:
        script = REPO / "examples" / "small" / "breakout_fig2.py"
        proc = subprocess.run([sys.executable, str(script), "--out", a.out, *rest], cwd=REPO, env=_env())
        sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
