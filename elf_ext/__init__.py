"""ELF adapter: the paper's Atari network and A2C method as an ELF model file, and lottery-ticket rounds on
ELF's own trainer (``python -m elf_ext.train --lottery_prune``)."""
