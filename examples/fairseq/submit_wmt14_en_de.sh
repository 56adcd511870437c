#!/usr/bin/env bash
# Submit one lottery experiment of transformer_wmt14_en_de.sbatch as two SLURM jobs: the winning ticket, then its
# random ticket, which starts when the winning ticket has finished (--dependency=afterok: it never waits on its
# allocation for masks still to come; SLURM cancels it if the winning ticket fails for good). Requeues of the
# winning ticket (time limit, a crashed rank or a node failure within its retry budget RETRIES, preemption) keep
# the dependency: the random ticket stays pending.
#   usage: bash examples/fairseq/submit_wmt14_en_de.sh [all|layers] [fairseq flags...]
# The jobs run in the current folder (their logs: lth-wmt14-JOBID.out); relative paths are taken from there.
# Environment (defaults: the paper's 16 nodes x 8 GPUs):
#   NODES (16)  GPUS_PER_NODE (8; 0 = CPUs only: gloo)  TASKS_PER_NODE (one per GPU; 1 without GPUs)
#   CPUS_PER_TASK (10)  MEM (0 = all of the node's)  TIME (72:00:00)  PARTITION (the cluster's default)
#   RETRIES (3: crash and node-loss requeues per job)
#   MODEL (base|tiny)  DATA  RUNS (checkpoints): the winning ticket in RUNS/lth_wmt14_VARIANT_winning, the random
#   ticket in RUNS/lth_wmt14_VARIANT_random, with the winning ticket's masks.
# To run both tickets side by side instead (twice the resources at once), submit the random ticket by hand with
# TICKET=random once the winning ticket's job runs: each round waits for the winning ticket's mask, and the random
# ticket stops at once if the winning ticket's job is gone (neither running nor queued).
set -euo pipefail
VARIANT=${1:-all}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
NODES=${NODES:-16}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
if [ "$GPUS_PER_NODE" -gt 0 ]; then DEFAULT_TASKS=$GPUS_PER_NODE; else DEFAULT_TASKS=1; fi
TASKS_PER_NODE=${TASKS_PER_NODE:-$DEFAULT_TASKS}
RUNS=${RUNS:-checkpoints}
WINNING_SAVE=$RUNS/lth_wmt14_${VARIANT}_winning
RANDOM_SAVE=$RUNS/lth_wmt14_${VARIANT}_random
RESOURCES=(--nodes="$NODES" --ntasks-per-node="$TASKS_PER_NODE" --gpus-per-node="$GPUS_PER_NODE"
           --cpus-per-task="${CPUS_PER_TASK:-10}" --mem="${MEM:-0}" --time="${TIME:-72:00:00}")
if [ -n "${PARTITION:-}" ]; then RESOURCES+=(--partition="$PARTITION"); fi
ENV="ALL,RECIPE_DIR=$HERE,VARIANT=$VARIANT,RUNS=$RUNS,WINNING_SAVE=$WINNING_SAVE"

winning=$(sbatch --parsable "${RESOURCES[@]}" --job-name="lth-wmt14-$VARIANT-wt" \
  --export="$ENV,TICKET=winning,SAVE=$WINNING_SAVE" "$HERE/transformer_wmt14_en_de.sbatch" "$@")
winning=${winning%%;*}
random=$(sbatch --parsable "${RESOURCES[@]}" --job-name="lth-wmt14-$VARIANT-rt" \
  --dependency="afterok:$winning" --kill-on-invalid-dep=yes \
  --export="$ENV,TICKET=random,SAVE=$RANDOM_SAVE" "$HERE/transformer_wmt14_en_de.sbatch" "$@")
random=${random%%;*}
echo "winning ticket: job $winning ($WINNING_SAVE)"
echo "random ticket:  job $random ($RANDOM_SAVE), after job $winning has finished"
