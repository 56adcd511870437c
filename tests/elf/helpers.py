"""Shared by the ELF tests: they need the real ELF (the ``elf-rl`` distribution, built by scripts/setup.sh
from ../shared/third_party/ELF-1f79017.tar.gz); without it they skip with this reason, and CI fails on skips."""
import importlib.util

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
