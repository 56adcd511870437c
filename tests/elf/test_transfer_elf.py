"""ELF's --lottery_transfer_from and --lottery_transfer_keep_dense (ELF's flag style) make a transferred ticket."""
import argparse

from .helpers import require_elf

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
    assert cfg.ticket is Ticket.TRANSFERRED and cfg.source_dir == "runs/breakout/wt" and cfg.first_round == 3
    assert cfg.transfer_keep_dense == ("policy_branch.*", "value_branch.*") and cfg.masks_from is None
