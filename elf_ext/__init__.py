"""lth-plugins adapter for ELF (github facebookresearch/ELF, commit 1f79017): the paper's Atari network and A2C
method as an ELF model file, and lottery-ticket rounds on ELF's own trainer (``python -m elf_ext.train
--lottery_prune``). Modules: train (command line and rounds), flags, episodes (game scores from ELF's batches),
checkpoints (a round's files), network, method, lottery_model (the model file), games (ROMs), sweep, build.
Importing this package imports no ELF.
"""
FRAMEWORK = "elf"
