#!/usr/bin/env bash
# Centipede (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Centipede.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" centipede.bin "${1:-0}" "${@:2}"
