"""Shared by the ELF tests: they need the real ELF (the ``elf-rl`` distribution, built by scripts/setup.sh
from ../shared/third_party/ELF-1f79017.tar.gz); without it they skip with this reason, and CI fails on skips."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ELF_MISSING = importlib.util.find_spec("rlpytorch") is None


def require_elf(game: bool = False):
    if ELF_MISSING:
        pytest.skip("ELF is not installed: build it with `lth deps build elf --source ELF_TREE` "
                    "(scripts/setup.sh with ELF_SRC)", allow_module_level=True)
    if game and importlib.util.find_spec("atari_game") is None:
        pytest.skip("ELF's Atari game module (atari_game) is not installed", allow_module_level=True)


def elf_args(**params):
    """An ELF-style args object with ``params`` as ELF's loader passes them (GC.params)."""
    class Args:
        pass

    a = Args()
    a.params = dict(params)
    return a


REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("elf_probe.py")
TINY_MODEL = dict(model_file=str(Path(__file__).with_name("tiny_model")), model="tiny")


def subprocess_env(**extra):
    """The environment of an ELF run started by a test: this checkout importable, one OpenMP thread."""
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)


def run_python(args, timeout=300, **env):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(**env), timeout=timeout, cwd=REPO)


def read_events(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def read_metrics(run_dir, k):
    return json.loads((Path(run_dir) / f"round_{k:02d}" / "metrics.json").read_text())
