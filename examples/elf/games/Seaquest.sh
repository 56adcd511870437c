#!/usr/bin/env bash
# Seaquest (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/Seaquest.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" seaquest.bin "${1:-0}" "${@:2}"
