#!/usr/bin/env bash
# Krull (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Krull.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" krull.bin "${1:-0}" "${@:2}"
