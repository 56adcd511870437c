"""ELF model file of the plugin (``model_file="$(lth elf-model-file)"``, ``model=actor_critic_lottery``).

ELF imports it by path (``__import__`` of the basename), reads ``Models`` and applies ``Defaults`` (the
paper's setting) to its own flags.
"""
from elf_ext.flags import PAPER_DEFAULTS
from elf_ext.method import ActorCriticClipped
from elf_ext.network import LotteryAtariNet

Models = {"actor_critic_lottery": [LotteryAtariNet, ActorCriticClipped]}
Defaults = dict(PAPER_DEFAULTS)
