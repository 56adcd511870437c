#!/usr/bin/env bash
# Wikitext-2 for the paper's LSTM language model (not run in CI), with fairseq's own preprocessing
# (as fairseq's examples/language_model README does for Wikitext-103):
#   wget https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip && unzip wikitext-2-v1.zip
set -euo pipefail
TEXT=${1:-wikitext-2}
DEST=${2:-data-bin/wikitext-2}
fairseq-preprocess --only-source \
  --trainpref "$TEXT/wiki.train.tokens" --validpref "$TEXT/wiki.valid.tokens" --testpref "$TEXT/wiki.test.tokens" \
  --destdir "$DEST" --workers 8
