#!/usr/bin/env bash
# Data preparation for the paper's WMT'14 En-De Transformer experiments (not run in CI).
# fairseq's own recipe (examples/translation in the fairseq repository), as in Ott et al. 2018 / the paper:
#   1. download and tokenize + BPE the data with fairseq's prepare-wmt14en2de.sh (Moses tokenizer, subword-nmt):
#        git clone https://github.com/facebookresearch/fairseq && cd fairseq/examples/translation
#        bash prepare-wmt14en2de.sh            # writes wmt14_en_de/{train,valid,test}.{en,de}
#      (the paper used the pre-processed dataset of Vaswani et al.; fairseq also documents it:
#       https://github.com/facebookresearch/fairseq/tree/main/examples/scaling_nmt, "wmt16_en_de_bpe32k")
#   2. binarize with a joined dictionary:
set -euo pipefail
TEXT=${1:?usage: prepare_wmt14_en_de.sh TEXT_DIR [DEST]}
DEST=${2:-data-bin/wmt14_en_de}
fairseq-preprocess --source-lang en --target-lang de \
  --trainpref "$TEXT/train" --validpref "$TEXT/valid" --testpref "$TEXT/test" \
  --destdir "$DEST" --joined-dictionary --workers 16
