#!/usr/bin/env bash
# The paper's Transformer-base WMT'14 En-De lottery experiment (Yu et al. 2020, section 4.2.2, Figure 6):
# fairseq transformer_wmt_en_de, 50k updates per ticket, global iterative pruning 20% x 20 rounds, late reset
# after 1000 updates, checkpoint averaging before BLEU, scored by fairseq-generate (beam 4, lenpen 0.6).
# The paper trained on 128 V100s; the effective batch below (--max-tokens 3584 x --update-freq) targets the
# ~460k-token batches of Ott et al. 2018 on 8 GPUs: adjust --update-freq to your GPU count (x GPUs * 3584 * freq).
#   usage: transformer_wmt14_en_de.sh [all|layers] [winning|random] [more fairseq-train flags...]
#   all    = prune every weight (Figure 6 left);  layers = keep embeddings dense, prune only transformer layers
#            (attention and fully-connected weights; Figure 6 right)
# Environment:
#   DATA          binarized data (default data-bin/wmt14_en_de)
#   RUNS          folder of the runs (default checkpoints); SAVE: this run's folder (default
#                 RUNS/lth_wmt14_VARIANT_TICKET); WINNING_SAVE: the winning ticket's folder, whose masks a random
#                 ticket uses (default RUNS/lth_wmt14_VARIANT_winning)
#   MODEL         base (the paper's transformer_wmt_en_de) or tiny (one layer of width 32: the same experiment at
#                 CPU scale, for trying the recipe)
#   DEVICE        gpu (--fp16, NCCL) or cpu (--cpu, gloo, fairseq's legacy_ddp: its pytorch_ddp wants GPU ids)
#   UPDATE_FREQ   --update-freq (default 16)
# Run by transformer_wmt14_en_de.sbatch once per SLURM task (one task per rank); the last line replaces this shell
# by fairseq-train, which then receives SLURM's signals itself.
set -euo pipefail
VARIANT=${1:-all}
TICKET=${2:-winning}
DATA=${DATA:-data-bin/wmt14_en_de}
RUNS=${RUNS:-checkpoints}
SAVE=${SAVE:-$RUNS/lth_wmt14_${VARIANT}_${TICKET}}
WINNING_SAVE=${WINNING_SAVE:-$RUNS/lth_wmt14_${VARIANT}_winning}
MODEL=${MODEL:-base}
DEVICE=${DEVICE:-gpu}
UPDATE_FREQ=${UPDATE_FREQ:-16}     # 8 GPUs x 3584 tokens x 16 ~ 460k tokens per update
USER_DIR=$(lth fairseq-user-dir 2>/dev/null || python -c "import fairseq_ext; print(fairseq_ext.USER_DIR)")

case "$MODEL" in
  base) MODEL_FLAGS=(--arch transformer_wmt_en_de --max-tokens 3584) ;;
  tiny) MODEL_FLAGS=(--arch transformer --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32
                     --decoder-embed-dim 32 --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64
                     --encoder-attention-heads 2 --decoder-attention-heads 2 --max-tokens 2000) ;;
  *) echo "transformer_wmt14_en_de.sh: MODEL must be base or tiny (got '$MODEL')" >&2; exit 2 ;;
esac
case "$DEVICE" in
  gpu) DEVICE_FLAGS=(--fp16) ;;
  cpu) DEVICE_FLAGS=(--cpu --distributed-backend gloo --ddp-backend legacy_ddp) ;;
  *) echo "transformer_wmt14_en_de.sh: DEVICE must be gpu or cpu (got '$DEVICE')" >&2; exit 2 ;;
esac
EXTRA=()
if [ "$VARIANT" = layers ]; then
  EXTRA+=(--lottery-include 'encoder.layers.*' --lottery-include 'decoder.layers.*'
          --lottery-exclude '*layer_norm*')
fi
if [ "$TICKET" = random ]; then
  EXTRA+=(--lottery-ticket random --lottery-masks-from "$WINNING_SAVE")
fi

exec fairseq-train "$DATA" --user-dir "$USER_DIR" \
  --task translation "${MODEL_FLAGS[@]}" --share-all-embeddings \
  --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0 \
  --lr 0.0007 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-07 \
  --dropout 0.1 --weight-decay 0.0 \
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
  --update-freq "$UPDATE_FREQ" "${DEVICE_FLAGS[@]}" \
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
