#!/usr/bin/env bash
# Berzerk (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Berzerk.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" berzerk.bin "${1:-0}" "${@:2}"
