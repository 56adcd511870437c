#!/usr/bin/env bash
# Kangaroo (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Kangaroo.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" kangaroo.bin "${1:-0}" "${@:2}"
