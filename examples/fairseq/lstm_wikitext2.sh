#!/usr/bin/env bash
# The paper's 2-layer LSTM LM on Wikitext-2 (Yu et al. 2020, section 4.2.1, Figure 5): embeddings and hidden
# size 650, dropout 0.5 between the layers, truncated BPTT 50, batch 30, Adam lr 1e-3 betas (0.9, 0.999)
# eps 1e-3, 10 epochs per ticket, global iterative pruning 20% x 20 rounds, late reset after 1 epoch, test
# log-perplexity (metrics.json: test_log_ppl = ln(ppl); test_loss = fairseq-eval-lm's base-2 loss).
#   usage: lstm_wikitext2.sh [winning|random] [late|init] [iterative|oneshot]
# Where fairseq's lstm_lm cannot express the paper's setting exactly:
# * BPTT: fairseq's language_modeling task cuts the token stream into independent blocks of
#   --tokens-per-sample 50; the hidden state is NOT carried across blocks (truncated BPTT with state passing
#   is not available in fairseq's lstm_lm), so every block starts from a zero state.
# * dropout: fairseq's lstm_lm applies --decoder-dropout-in/--decoder-dropout-out to the LSTM input and output;
#   between the two LSTM layers it uses the same dropout_out (0.5 here), which matches "a dropout layer between
#   the two RNN layers"; it also drops the embedding input (dropout_in), which the paper does not mention: set
#   to 0.5 here as in the usual Zaremba-style medium LSTM; use --decoder-dropout-in 0 to turn it off.
# * the paper does not say whether input and output embeddings are tied: not tied here
#   (add --share-decoder-input-output-embed to tie them).
# * batch 30 = --batch-size 30 blocks of 50 tokens (1500 tokens per update).
set -euo pipefail
TICKET=${1:-winning}
RESET=${2:-late}
SCHEDULE=${3:-iterative}
DATA=${DATA:-data-bin/wikitext-2}
SAVE=${SAVE:-checkpoints/lth_lstm_wt2_${TICKET}_${RESET}_${SCHEDULE}}
USER_DIR=$(lth fairseq-user-dir 2>/dev/null || python -c "import fairseq_ext; print(fairseq_ext.USER_DIR)")
EXTRA=()
if [ "$TICKET" = random ]; then
  EXTRA+=(--lottery-ticket random --lottery-masks-from "checkpoints/lth_lstm_wt2_winning_late_iterative")
fi
fairseq-train "$DATA" --user-dir "$USER_DIR" \
  --task language_modeling --arch lstm_lm \
  --decoder-embed-dim 650 --decoder-hidden-size 650 --decoder-out-embed-dim 650 --decoder-layers 2 \
  --decoder-dropout-in 0.5 --decoder-dropout-out 0.5 --dropout 0.5 \
  --tokens-per-sample 50 --sample-break-mode none --batch-size 30 \
  --optimizer adam --adam-betas '(0.9, 0.999)' --adam-eps 1e-3 --lr 1e-3 --lr-scheduler fixed \
  --criterion cross_entropy --max-epoch 10 --no-epoch-checkpoints \
  --save-dir "$SAVE" \
  --lottery-prune --lottery-rounds 20 --lottery-rate 0.2 --lottery-schedule "$SCHEDULE" \
  --lottery-reset "$RESET" --lottery-late-reset 1ep \
  "${EXTRA[@]}"
