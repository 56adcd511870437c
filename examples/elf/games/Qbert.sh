#!/usr/bin/env bash
# Qbert (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Qbert.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" qbert.bin "${1:-0}" "${@:2}"
