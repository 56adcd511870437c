"""ELF's --lottery_transfer_from and --lottery_transfer_keep_dense (ELF's flag style) make a transferred ticket; a
real one trains a Breakout ticket on Pong (6 actions where Breakout has 4: its policy head trains dense)."""
import argparse
import importlib.util
import json
import os

import pytest

from .helpers import TINY_MODEL, run_python, require_elf

require_elf()

from rlpytorch import ArgsProvider  # noqa: E402

from lth_plugins.hparams import Ticket  # noqa: E402


def test_the_transfer_flags_reach_the_lottery_configuration():
    from elf_ext import lottery_model
    from elf_ext.flags import LotteryArgs

    lottery = LotteryArgs()
    ArgsProvider.Load(argparse.ArgumentParser(), {"lottery": lottery},
                      cmd_line=["--lottery_transfer_from", "runs/breakout/wt:3", "--lottery_transfer_keep_dense",
                                "policy_branch.*,value_branch.*", "--lottery_rounds", "5"],
                      global_defaults=lottery_model.Defaults)
    cfg = lottery.config().validate()
    assert cfg.ticket is Ticket.TRANSFERRED and cfg.source_dir == os.path.abspath("runs/breakout/wt") and cfg.first_round == 3
    assert cfg.transfer_keep_dense == ("policy_branch.*", "value_branch.*") and cfg.masks_from is None


def _elf(run_dir, rom, *flags):
    p = run_python(["-m", "elf_ext.train", "--rom_file", rom, "--num_games", 4, "--batchsize", 4, "--T", 6,
                    "--torch_threads", 1, "--lottery_prune", "--lottery_run_dir", run_dir, "--lottery_epochs", 2,
                    "--lottery_epoch_batches", 5, "--lottery_last_games", 4, "--lottery_rounds", 1, *flags],
                   **TINY_MODEL)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


@pytest.mark.skipif(importlib.util.find_spec("atari_game") is None, reason="needs ELF's Atari game module")
def test_a_breakout_ticket_trains_on_pong_with_its_policy_head_dense(tmp_path):
    _elf(tmp_path / "wt", "breakout.bin")
    _elf(tmp_path / "tt", "pong.bin", "--seed", 1, "--lottery_transfer_from", tmp_path / "wt",
         "--lottery_transfer_keep_dense", "policy_branch.*")
    rec, theirs = (json.loads((tmp_path / d / "round_01" / "metrics.json").read_text()) for d in ("tt", "wt"))
    assert rec["ticket"] == "transferred" and rec["start"] == theirs["start"] == {"epoch": 1, "update": 5}
    density, source = (json.loads((tmp_path / d / "round_01" / "sparsity.json").read_text())["density"]
                       for d in ("tt", "wt"))
    assert density == {n: d for n, d in source.items() if not n.startswith("policy_branch.")}
    assert not (tmp_path / "tt" / "round_00").exists()
