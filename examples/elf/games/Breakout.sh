#!/usr/bin/env bash
# Breakout (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Breakout.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" breakout.bin "${1:-0}" "${@:2}"
