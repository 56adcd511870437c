#!/usr/bin/env bash
# Figure 1 (classic control) of "Playing the lottery with rewards and multiple languages" (Yu et al., ICLR 2020):
# winning (WT, late reset after epoch 1) vs random (RT) tickets, 20 rounds of global iterative pruning at 20%,
# 3 games x 3 seeds, FLARE A2C with the paper's settings (Table 1, Sec. 3.2.3), then `lth report`.
#
#   lth deps build flare --source /path/to/flare   # once: flare-rl from a checkout of github.com/idlrl/flare (33b71b4)
#   bash examples/flare_classic_control.sh    # RUNS=runs/flare_fig1 GAMES="CartPole-v0" SEEDS="0 1 2" ...
#
# LunarLander-v2 (the paper's) no longer exists in gymnasium 1.x: LunarLander-v3 is used.
# Each run directory is resumable: re-running the script skips finished rounds.
# Cost: a CartPole round (3200 games, 32 agents) takes a few minutes on 2 CPU cores; the full figure is days of
# CPU. SMOKE=1 runs the same pipeline with tiny settings (2 rounds, 2 epochs of 8 games, 4 agents) in minutes.
set -euo pipefail

PYTHON=${PYTHON:-python}
"$PYTHON" -c "from flare_ext.flare_compat import import_flare; import_flare()" || exit 2
RUNS=${RUNS:-runs/flare_fig1}
GAMES=${GAMES:-"CartPole-v0 Acrobot-v1 LunarLander-v3"}
SEEDS=${SEEDS:-"0 1 2"}
ROUNDS=${ROUNDS:-20}
EXTRA=()
if [[ "${SMOKE:-0}" == "1" ]]; then
  ROUNDS=2
  EXTRA=(--epochs 2 --games-per-epoch 8 --last-games 8 --agents 4)
fi

for game in $GAMES; do
  for seed in $SEEDS; do
    wt="$RUNS/$game/seed$seed/wt"
    rt="$RUNS/$game/seed$seed/rt"
    echo "== $game seed $seed: winning ticket -> $wt"
    "$PYTHON" -m flare_ext.a2c --game "$game" --seed "$seed" --run-dir "$wt" "${EXTRA[@]}" \
      --lottery-prune --lottery-rounds "$ROUNDS" --lottery-rate 0.2 \
      --lottery-reset late --lottery-late-reset 1ep --lottery-ticket winning
    echo "== $game seed $seed: random ticket -> $rt"
    "$PYTHON" -m flare_ext.a2c --game "$game" --seed "$seed" --run-dir "$rt" "${EXTRA[@]}" \
      --lottery-prune --lottery-rounds "$ROUNDS" --lottery-rate 0.2 \
      --lottery-ticket random --lottery-masks-from "$wt"
  done
done

run_dirs=()
for game in $GAMES; do for seed in $SEEDS; do
  run_dirs+=("$RUNS/$game/seed$seed/wt" "$RUNS/$game/seed$seed/rt")
done; done
"$PYTHON" -m lth_plugins.cli report "${run_dirs[@]}" -o "$RUNS/report"
echo "report: $RUNS/report/index.html"
