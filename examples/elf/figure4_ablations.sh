#!/usr/bin/env bash
# Figure 4 of the paper: ablations of the winning ticket on Assault, Breakout and Seaquest (ELF) - one-shot
# pruning and no late resetting (reset to init) - next to the main runs of figure2.sh, then `lth report`
# (which draws each variant of the same game in one figure).
#
#   bash examples/elf/figure4_ablations.sh   # RUNS=runs/elf SEEDS="0 1 2"; SMOKE=1 for tiny settings
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
export RUNS=${RUNS:-runs/elf}
SEEDS=${SEEDS:-"0 1 2"}
run_dirs=()
for rom in assault breakout seaquest; do
  for seed in $SEEDS; do
    # the main winning ticket (iterative, late reset) and the two ablations, each with its random ticket
    RUNS="$RUNS" bash "$HERE/run_game.sh" "$rom.bin" "$seed" "$@"
    RUNS="$RUNS/oneshot" bash "$HERE/run_game.sh" "$rom.bin" "$seed" --lottery_schedule oneshot "$@"
    RUNS="$RUNS/init_reset" bash "$HERE/run_game.sh" "$rom.bin" "$seed" --lottery_reset init "$@"
    for sub in "" /oneshot /init_reset; do
      run_dirs+=("$RUNS$sub/$rom/seed$seed/wt" "$RUNS$sub/$rom/seed$seed/rt")
    done
  done
done
"$PYTHON" -m lth_plugins.cli report "${run_dirs[@]}" -o "$RUNS/report_ablations"
echo "report: $RUNS/report_ablations/index.html"
