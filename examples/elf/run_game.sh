#!/usr/bin/env bash
# One Atari game of the paper on ELF: a winning ticket (20 rounds, 20% per round, late reset after epoch 1)
# and its random ticket, with the paper's settings (Table 1, Sec. 3.2.3: 1024 games, T 6, batch 128, A2C with
# importance factor clamped at 1.5, rewards and advantages clipped to [-1, 1], Adam 1e-3, N=25 epochs of
# M=1000 training batches, ticket reward = mean reward of the last L=1024 games). All are ELF flags.
#
#   bash examples/elf/run_game.sh breakout.bin [SEED] [extra ELF / --lottery_* flags...]
#
# RUNS (default runs/elf), TICKETS ("wt rt", or one of them), PYTHON. ROMs come from the ale-py wheel.
# SMOKE=1: the same pipeline with tiny settings (16 games, batch 4, 2 rounds of 2 x 5 batches), flags after them win.
# Each run directory is resumable: re-running skips finished rounds and restarts an unfinished one.
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
export model=actor_critic_lottery
export model_file="${model_file:-$("$PYTHON" -m lth_plugins.cli elf-model-file)}"
export game="${game:-$("$PYTHON" -m lth_plugins.cli elf-game-file)}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
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
