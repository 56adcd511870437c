"""Pieces of the ELF adapter that need no ELF: episode bookkeeping, ROM lookup, the lth command, flags."""
import subprocess
import sys
from pathlib import Path

import pytest

from elf_ext.episodes import EpisodeTracker
from elf_ext.games import PAPER_GAMES, RomError, resolve_rom


def test_episode_tracker_counts_finished_games_only():
    t = EpisodeTracker()
    t.feed([0, 1], [0, 0], [0, 0])
    t.feed([0, 1], [1, 1], [0, 0])
    t.feed([0, 1], [-1, 1], [0, 0])
    t.feed([0, 1], [0, 0], [1, 0], updates=7)   # game 0 over: 1 - 1 = 0
    t.feed([0, 1], [1, 0], [0, 0])
    assert t.rewards == [0.0] and t.finished_at == [7]
    t.new_round()                               # both games were partly played before: not counted
    t.feed([0, 1], [1, 1], [0, 0])
    t.feed([0, 1], [0, 0], [0, 1])              # game 1 over (excluded); starts fresh
    t.feed([1], [1], [0])
    t.feed([1], [1], [0])
    t.feed([1, 0], [0, 0], [1, 1])              # game 1: 2; game 0 (excluded) ends
    assert t.rewards == [2.0]
    t.feed([0], [3], [0])
    t.feed([0], [0], [1])
    assert t.rewards == [2.0, 3.0]
    assert t.ticket_reward(1) == 3.0 and t.ticket_reward(10) == 2.5
    with pytest.raises(ValueError, match="no game finished"):
        EpisodeTracker().ticket_reward(5)


def test_rom_lookup(tmp_path):
    (tmp_path / "breakout.bin").write_bytes(b"rom")
    assert resolve_rom("breakout.bin", str(tmp_path)) == tmp_path / "breakout.bin"
    with pytest.raises(RomError, match=r"unknown ROM 'brekout.bin'.*breakout.bin"):
        resolve_rom("brekout.bin", str(tmp_path))
    assert set(PAPER_GAMES) == {"Assault", "Berzerk", "Breakout", "Centipede", "Kangaroo", "Krull", "Qbert",
                                "Seaquest", "SpaceInvaders"}


def test_lth_elf_model_file_is_the_importable_model_file():
    lth = Path(sys.executable).with_name("lth")
    out = subprocess.run([str(lth), "elf-model-file"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(out)
    assert path.name == "lottery_model" and path.with_suffix(".py").is_file()
    assert "Models" in path.with_suffix(".py").read_text()
