#!/usr/bin/env bash
# SpaceInvaders (Table 1 of the paper), the paper's ELF settings; usage: bash examples/elf/games/SpaceInvaders.sh [SEED] [flags...]
exec bash "$(dirname "$0")/../run_game.sh" space_invaders.bin "${1:-0}" "${@:2}"
