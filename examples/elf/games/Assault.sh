#!/usr/bin/env bash
# Assault (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Assault.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" assault.bin "${1:-0}" "${@:2}"
