#!/usr/bin/env bash
# Figure 2 of the paper: winning vs random tickets on the 9 Atari games x 3 seeds (ELF), then `lth report`.
#
#   bash examples/elf/figure2.sh            # RUNS=runs/elf GAMES="Breakout Seaquest" SEEDS="0 1 2" ...
#
# Cost: the paper's setting (1024 game threads, 25 x 1000 batches of 128 per round, 21 rounds) is GPU-days per
# game; SMOKE=1 runs the same pipeline with tiny settings (16 games, batch 4, 2 rounds of 2 x 5 batches).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
export RUNS=${RUNS:-runs/elf}
GAMES=${GAMES:-"Assault Berzerk Breakout Centipede Kangaroo Krull Qbert Seaquest SpaceInvaders"}
SEEDS=${SEEDS:-"0 1 2"}
run_dirs=()
for g in $GAMES; do
  for seed in $SEEDS; do
    bash "$HERE/games/$g.sh" "$seed" "$@"
    rom=$(sed -n 's/^exec .*run_game.sh" \([a-z_]*\)\.bin.*/\1/p' "$HERE/games/$g.sh")
    run_dirs+=("$RUNS/$rom/seed$seed/wt" "$RUNS/$rom/seed$seed/rt")
  done
done
"$PYTHON" -m lth_plugins.cli report "${run_dirs[@]}" -o "$RUNS/report"
echo "report: $RUNS/report/index.html"
