#!/usr/bin/env bash
# The paper's Transformer-base WMT'14 En-De lottery experiment (Yu et al. 2020, section 4.2.2, Figure 6):
# fairseq transformer_wmt_en_de, 50k updates per ticket, global iterative pruning 20% x 20 rounds, late reset
# after 1000 updates, checkpoint averaging before BLEU, scored by fairseq-generate (beam 4, lenpen 0.6).
# The paper trained on 128 V100s; the effective batch below (--max-tokens 3584 x --update-freq) targets the
# ~460k-token batches of Ott et al. 2018 on 8 GPUs: adjust --update-freq to your GPU count (x GPUs * 3584 * freq).
#   usage: transformer_wmt14_en_de.sh [all|layers] [winning|random] [more fairseq-train flags...]
#   all    = prune every weight (Figure 6 left);  layers = keep embeddings dense, prune only transformer layers
#            (attention and fully-connected weights; Figure 6 right)
set -euo pipefail
VARIANT=${1:-all}
TICKET=${2:-winning}
DATA=${DATA:-data-bin/wmt14_en_de}
UPDATE_FREQ=${UPDATE_FREQ:-16}     # 8 GPUs x 3584 tokens x 16 ~ 460k tokens per update
SAVE=${SAVE:-checkpoints/lth_wmt14_${VARIANT}_${TICKET}}
USER_DIR=$(lth fairseq-user-dir 2>/dev/null || python -c "import fairseq_ext; print(fairseq_ext.USER_DIR)")

EXTRA=()
if [ "$VARIANT" = layers ]; then
  EXTRA+=(--lottery-include 'encoder.layers.*' --lottery-include 'decoder.layers.*'
          --lottery-exclude '*layer_norm*')
fi
if [ "$TICKET" = random ]; then
  EXTRA+=(--lottery-ticket random --lottery-masks-from "checkpoints/lth_wmt14_${VARIANT}_winning")
fi

fairseq-train "$DATA" --user-dir "$USER_DIR" \
  --task translation --arch transformer_wmt_en_de --share-all-embeddings \
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0 \
  --lr 0.0007 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-07 \
  --dropout 0.1 --weight-decay 0.0 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --max-tokens 3584 --update-freq "$UPDATE_FREQ" --fp16 \
  --max-update 50000 --save-interval-updates 1000 --keep-interval-updates 10 --no-epoch-checkpoints \
  --save-dir "$SAVE" \
  --lottery-prune --lottery-rounds 20 --lottery-rate 0.2 --lottery-schedule iterative \
  --lottery-reset late --lottery-late-reset 1000u \
  --lottery-eval-bleu --lottery-generate-args='--beam 4 --lenpen 0.6 --remove-bpe' \
  --lottery-bleu-average-last 5 \
  "${EXTRA[@]}" "${@:3}"
# Notes
# * checkpoint averaging: the last 5 interval checkpoints (every 1000 updates) of each round are averaged before
#   BLEU, as fairseq's scripts/average_checkpoints.py --num-update-checkpoints 5; the mask of the next round is
#   computed from the final (not averaged) weights.
# * --fp16: the fp32 master copy starts from the masked weights and only ever sees zero gradients at pruned
#   entries, so pruned weights stay exactly zero.
# * BLEU is fairseq-generate's own (tokenized BLEU4) on the averaged checkpoint; each round's metrics.json records
#   the fairseq-generate command. For the compound-split score of the Transformer papers, run fairseq's
#   scripts/compound_split_bleu.sh on round_KK/generate/generate-test.txt.
