"""Run by tests/elf/test_elf_build.py in a subprocess (a Python error inside an ELF callback ends in a segfault).

    python tests/elf/elf_smoke.py OUT.json [GAMES BATCHSIZE T RUNS]
        a Breakout game context of the installed elf-rl (default 2 games, batch 2, T 3): replies to actor batches
        with random actions until the first training batch arrives, or for RUNS batches when given; writes the
        batch shapes it saw to OUT.json.
"""
import argparse
import json
import sys

import torch

import elf_atari.game as game
from rlpytorch import ArgsProvider


def main(out, games="2", batchsize="2", T="3", runs=None):
    loader = game.Loader()
    ArgsProvider.Load(argparse.ArgumentParser(), [loader], cmd_line=[
        "--rom_file", "breakout.bin", "--num_games", games, "--batchsize", batchsize, "--T", T, "--hist_len", "4",
        "--additional_labels", "id,last_terminal"])
    GC = loader.initialize()
    n = GC.params["num_action"]
    seen = {"actor": [], "train": [], "rom_dir": loader.args.rom_dir, "num_action": n}
    gen = torch.Generator().manual_seed(0)

    def actor(batch):
        B = batch["s"].size(1)
        seen["actor"].append(list(batch["s"].size()))
        return dict(a=torch.randint(n, (B,), generator=gen).tolist(), pi=torch.full((B, n), 1.0 / n),
                    V=torch.zeros(B, 1), rv=0)

    def train(batch):
        s = batch["s"]
        seen["train"].append(dict(shape=list(s.size()), pixel_range=[float(s.min()), float(s.max())],
                                  a_max=int(batch["a"].max())))

    GC.reg_callback("actor", actor)
    GC.reg_callback("train", train)
    GC.Start()
    for _ in range(int(runs or 200)):
        GC.Run()
        if seen["train"] and runs is None:
            break
    GC.Stop()
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
