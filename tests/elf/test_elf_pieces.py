"""Pieces of the ELF adapter that need no ELF: episode bookkeeping, ROM lookup, the lth command, flags."""
import subprocess
import sys
from pathlib import Path

import pytest

from elf_ext.episodes import EpisodeTracker, clip_reward
from elf_ext.games import PAPER_GAMES, RomError, resolve_rom


def test_episode_tracker_counts_finished_games_only():
    t = EpisodeTracker()
    t.feed([0, 1], [0, 0], [0, 0])
    t.feed([0, 1], [1, 1], [0, 0])
    t.feed([0, 1], [-1, 1], [0, 0])
    t.feed([0, 1], [0, 0], [1, 0], updates=7)   # game 0 over: 1 - 1 = 0
    t.feed([0, 1], [1, 0], [0, 0])
    assert t.scores == [0.0] and t.finished_at == [7]
    t.new_round()                               # both games were partly played before: not counted
    t.feed([0, 1], [1, 1], [0, 0])
    t.feed([0, 1], [0, 0], [0, 1])              # game 1 over (excluded); starts fresh
    t.feed([1], [1], [0])
    t.feed([1], [1], [0])
    t.feed([1, 0], [0, 0], [1, 1])              # game 1: 2; game 0 (excluded) ends
    assert t.scores == [2.0]
    t.feed([0], [3], [0])
    t.feed([0], [0], [1])
    assert t.scores == [2.0, 3.0]
    assert t.ticket_reward(1).value == 3.0 and t.ticket_reward(10).value == 2.5
    none = EpisodeTracker().ticket_reward(5)
    assert none.value is None and none.metrics()["ticket_reward_partial"] == "no game finished in this round"


def test_episode_tracker_keeps_raw_scores_beside_clipped_rewards():
    """The game reports raw rewards (Space Invaders: 5 to 30 points per alien); the ticket reward is their sum
    per game, the clipped sum (what the agent trains on, clip 1) beside it; a value over fewer than L games is
    flagged."""
    t = EpisodeTracker(reward_clip=1)
    for r in (0, 10, 0, 25, -3):
        t.feed([4], [r], [0])
    t.feed([4], [0], [1], updates=3)
    t.feed([4], [30], [0])
    t.feed([4], [0], [1], updates=5)
    assert t.scores == [32.0, 30.0] and t.clipped == [1.0, 1.0] and t.finished_at == [3, 5]
    ticket = t.ticket_reward(4)
    assert ticket.metrics() == {"ticket_reward": 31.0, "ticket_reward_clipped": 1.0, "ticket_games": 2,
                                "last_games": 4, "ticket_reward_partial": "only 2 of the last 4 games finished"}
    assert "ticket_reward_partial" not in t.ticket_reward(2).metrics()
    assert EpisodeTracker(reward_clip=0).clipped == [] and clip_reward(-7.0, 0) == -7.0 and clip_reward(7, 1) == 1


def test_episode_tracker_state_brings_finished_games_back():
    t = EpisodeTracker(reward_clip=1)
    t.feed([0, 1], [5, 2], [0, 0])
    t.feed([0, 1], [0, 0], [1, 0], updates=2)
    state = t.state()
    resumed = EpisodeTracker(reward_clip=1)
    resumed.restore(state)
    assert (resumed.scores, resumed.clipped, resumed.finished_at) == ([5.0], [1.0], [2])
    resumed.feed([1], [3], [0])               # a fresh emulator's game counts from its first step
    resumed.feed([1], [0], [1], updates=4)
    assert resumed.scores == [5.0, 3.0] and resumed.clipped == [1.0, 1.0]


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
