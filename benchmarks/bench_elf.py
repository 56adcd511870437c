"""ELF Atari speed with the plugin vs plain ELF, and a reduced Breakout WT/RT experiment.

    python benchmarks/bench_elf.py speed        # game steps/s: plain ELF training vs the plugin's rounds
    python benchmarks/bench_elf.py experiment   # reduced Breakout WT and RT: per-round reward table + lth report

speed: the same ELF settings, the same number of training batches (with ELF's checkpoint every epoch), the
paper's network, measured in one process each:
  plain ELF (ELF's Trainer and ModelInterface, no plugin), ELF's own `actor_critic` model (reference),
  the plugin's round 0 (dense) and round 1 (20% pruned) of `python -m elf_ext.train --lottery_prune`.
Ratios plugin / plain ELF (goal >= 0.95).  Game steps/s = acting batches x batch size per second
(x the frame skip of 2-4 frames per step = frames/s).
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
SPEED = ["--rom_file", "breakout.bin", "--num_games", "16", "--batchsize", "4", "--T", "6"]
EPOCHS = 2


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)


def plain_child(out: str, epoch_batches: int, argv) -> None:
    """ELF's train.py loop for EPOCHS x epoch_batches training batches, timed (runs in its own process)."""
    import torch

    from elf_ext.train import load_env, resolve_environ
    from rlpytorch import SingleProcessRun, Trainer

    trainer = Trainer()
    env, args = load_env(resolve_environ(os.environ), argv, trainer=trainer, runner=SingleProcessRun())
    torch.manual_seed(0)
    GC = env["game"].initialize()
    model = env["model_loaders"][0].load_model(GC.params)
    env["mi"].add_model("model", model, opt=True)
    env["mi"].add_model("actor", model, copy=True)
    trainer.setup(sampler=env["sampler"], mi=env["mi"], rl_method=env["method"])
    count = {"train": 0, "steps": 0}

    def train(batch):
        trainer.train(batch)
        count["train"] += 1
        if count["train"] % epoch_batches == 0:
            trainer.episode_summary(count["train"] // epoch_batches)

    def actor(batch):
        count["steps"] += batch["s"].size(1)
        return trainer.actor(batch)

    GC.reg_callback("train", train)
    GC.reg_callback("actor", actor)
    trainer.episode_start(0)
    GC.Start()
    t0 = time.monotonic()
    while count["train"] < EPOCHS * epoch_batches:
        GC.Run()
    wall = time.monotonic() - t0
    Path(out).write_text(json.dumps({"steps_per_s": count["steps"] / wall, "steps": count["steps"],
                                     "wall_s": wall, "params": sum(p.numel() for p in model.parameters())}))
    sys.stdout.flush()
    os._exit(0)


def run_plain(tmp: Path, epoch_batches: int, model_file=None, model=None) -> dict:
    out = tmp / f"plain_{time.monotonic_ns()}.json"
    extra = {}
    if model_file:
        extra = dict(model_file=model_file, model=model)
    p = subprocess.run([sys.executable, __file__, "_plain", str(out), str(epoch_batches), "--", *SPEED,
                        "--save_dir", str(tmp),
                        "--trainer_stats", "rewards", "--additional_labels", "id,last_terminal",
                        "--keys_in_reply", "V,rv"],
                       capture_output=True, text=True, env=_env(**extra), cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"plain ELF run failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_plugin(tmp: Path, epoch_batches: int) -> dict:
    run_dir = tmp / f"plugin_{time.monotonic_ns()}"
    p = subprocess.run([sys.executable, "-m", "elf_ext.train", *SPEED, "--lottery_prune", "--lottery_rounds", "1",
                        "--lottery_epochs", str(EPOCHS), "--lottery_epoch_batches", str(epoch_batches),
                        "--lottery_run_dir", str(run_dir)], capture_output=True, text=True, env=_env(), cwd=REPO)
    if p.returncode != 0:
        raise SystemExit(f"plugin run failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    rounds = [json.loads((run_dir / f"round_{k:02d}" / "metrics.json").read_text()) for k in (0, 1)]
    return {"dense": rounds[0]["metrics"]["steps_per_s"], "pruned": rounds[1]["metrics"]["steps_per_s"],
            "fraction_pruned": rounds[1]["fraction_pruned"]}


def elf_own_model_file():
    from elf_ext.paths import atari_game_file

    model = Path(atari_game_file()).with_name("model.py")
    return str(model)[:-3] if model.is_file() else None


def speed(repeats: int, epoch_batches: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        plain, plugin_dense, plugin_pruned, own = [], [], [], []
        own_file = elf_own_model_file()
        for i in range(repeats):  # interleaved, so that load from other jobs hits both alike
            plain.append(run_plain(tmp, epoch_batches)["steps_per_s"])
            r = run_plugin(tmp, epoch_batches)
            plugin_dense.append(r["dense"])
            plugin_pruned.append(r["pruned"])
            if own_file and i == 0:
                own.append(run_plain(tmp, epoch_batches, own_file, "actor_critic"))
            print(f"repeat {i + 1}/{repeats}: plain {plain[-1]:.1f}, plugin dense {r['dense']:.1f}, "
                  f"plugin 20% pruned {r['pruned']:.1f} game steps/s", flush=True)
        med = statistics.median
        print(f"\nsettings: {' '.join(SPEED)}, {EPOCHS} x {epoch_batches} training batches, 1 torch thread; "
              f"median of {repeats}")
        print(f"plain ELF, paper network:          {med(plain):8.1f} game steps/s")
        if own:
            print(f"plain ELF, ELF's actor_critic:     {own[0]['steps_per_s']:8.1f} game steps/s "
                  f"({own[0]['params']:,} parameters; reference)")
        print(f"plugin round 0 (dense):            {med(plugin_dense):8.1f} game steps/s  "
              f"ratio {med(plugin_dense) / med(plain):.3f} (goal >= 0.95)")
        print(f"plugin round 1 (20% pruned):       {med(plugin_pruned):8.1f} game steps/s  "
              f"ratio {med(plugin_pruned) / med(plain):.3f} (goal >= 0.95)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_plain":
        return plain_child(sys.argv[2], int(sys.argv[3]), sys.argv[sys.argv.index("--") + 1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["speed", "experiment"],
                    help="experiment: examples/small/breakout_fig2.py with its defaults (its flags after --)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epoch-batches", type=int, default=25, help="speed: training batches per epoch (2 epochs)")
    ap.add_argument("--out", default="lth_output/bench_elf")
    a, rest = ap.parse_known_args()
    if a.what == "speed":
        speed(a.repeats, a.epoch_batches)
    else:
        script = REPO / "examples" / "small" / "breakout_fig2.py"
        proc = subprocess.run([sys.executable, str(script), "--out", a.out, *rest], cwd=REPO, env=_env())
        sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
