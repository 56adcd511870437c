#!/usr/bin/env bash
# One Atari game of the paper on ELF, on this machine without a sweep: a winning ticket (20 rounds, 20% per round,
# late reset after epoch 1) and then its random ticket, with the paper's settings (elf_ext's defaults: 1024 games,
# T 6, batch 128, A2C with the importance factor clamped at 1.5, rewards and advantages clipped to [-1, 1], Adam
# 1e-3, N=25 epochs of M=1000 training batches, ticket reward = mean game score of the last L=1024 games).
#
#   bash examples/elf/run_game.sh breakout.bin [SEED] [extra ELF / --lottery_* flags, e.g. --gpu 0]
#
# RUNS (default runs/elf), TICKETS ("wt rt", or one of them), PYTHON. ROMs come from the ale-py wheel.
# SMOKE=1: the same pipeline with tiny settings (16 games, batch 4, 2 rounds of 2 x 5 batches), flags after them win.
# Rerunning continues each run where it stopped. Grids (games x seeds, on GPUs or SLURM): figure2.toml.
set -euo pipefail
ROM=${1:?usage: run_game.sh ROM_FILE [SEED] [flags...]}
SEED=${2:-0}
shift $(( $# >= 2 ? 2 : 1 ))
if [[ "${SMOKE:-0}" == "1" ]]; then
  set -- --num_games 16 --batchsize 4 --lottery_rounds 2 --lottery_epochs 2 --lottery_epoch_batches 5 \
    --lottery_last_games 16 "$@"
fi
PYTHON=${PYTHON:-python}
RUNS=${RUNS:-runs/elf}
TICKETS=${TICKETS:-"wt rt"}
name=${ROM%.bin}
wt="$RUNS/$name/seed$SEED/wt"
rt="$RUNS/$name/seed$SEED/rt"
for t in $TICKETS; do
  if [[ $t == wt ]]; then
    echo "== $name seed $SEED: winning ticket -> $wt"
    "$PYTHON" -m elf_ext.train --rom_file "$ROM" --lottery_prune --lottery_seed "$SEED" --lottery_run_dir "$wt" \
      --lottery_ticket winning "$@"
  else
    echo "== $name seed $SEED: random ticket -> $rt"
    "$PYTHON" -m elf_ext.train --rom_file "$ROM" --lottery_prune --lottery_seed "$SEED" --lottery_run_dir "$rt" \
      --lottery_ticket random --lottery_masks_from "$wt" "$@"
  fi
done
