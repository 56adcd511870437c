"""The `--lottery-*` flags of fairseq-train and their validation (before any training, nothing written)."""
import argparse
import math
import os
from typing import Optional

from lth_plugins.errors import LotteryConfigError
from lth_plugins.hparams import LotteryConfig

# Settings that define a fairseq lottery experiment: a run directory refuses a rerun that changes them.
IDENTITY_KEYS = ("task", "arch", "data", "criterion", "optimizer", "lr", "max_update", "max_epoch", "seed",
                 "max_tokens", "batch_size", "update_freq", "dropout", "lr_scheduler", "weight_decay",
                 "source_lang", "target_lang", "tokens_per_sample", "sample_break_mode",
                 "share_all_embeddings", "share_decoder_input_output_embed")


def add_lottery_args(parser: argparse.ArgumentParser) -> None:
    """Add the lottery flags (one group) to fairseq's training parser."""
    if any(a.dest == "lottery_prune" for a in parser._actions):
        return
    group = parser.add_argument_group("lottery ticket (lth-plugins)")
    group.add_argument("--lottery-prune", action="store_true",
                       help="run the lottery-ticket procedure: dense round 0, then prune, reset and retrain for "
                            "--lottery-rounds rounds; round k's checkpoints go to SAVE_DIR/round_KK/")
    LotteryConfig.add_arguments(parser, prefix="--lottery-", group_title="lottery ticket hyperparameters")
    group.add_argument("--lottery-run-dir", default=None, metavar="DIR",
                       help="lottery run store (config, masks, snapshots, per-round metrics); default: --save-dir")
    group.add_argument("--lottery-eval-bleu", action="store_true",
                       help="translation: after each round, beam-search the test split and score it with "
                            "sacrebleu (detokenized, and tokenized as multi-bleu.perl scores it)")
    group.add_argument("--lottery-test-subset", default="test", metavar="SPLIT",
                       help="split used for BLEU / test perplexity (default: test)")
    group.add_argument("--lottery-no-test", action="store_true",
                       help="language modeling: skip the test-set log-perplexity (computed by default)")
    group.add_argument("--lottery-lm-context-window", type=int, default=0, metavar="N",
                       help="context window of the test perplexity, as fairseq-eval-lm --context-window")
    group.add_argument("--lottery-bleu-beam", type=int, default=5, metavar="N", help="beam size (default 5)")
    group.add_argument("--lottery-bleu-lenpen", type=float, default=1.0, metavar="F", help="length penalty")
    group.add_argument("--lottery-bleu-max-len-a", type=float, default=1.2, metavar="F",
                       help="max target length = a*src_len + b (default a=1.2)")
    group.add_argument("--lottery-bleu-max-len-b", type=int, default=10, metavar="N", help="(default b=10)")
    group.add_argument("--lottery-bleu-max-tokens", type=int, default=None, metavar="N",
                       help="tokens per generation batch (default: --max-tokens)")
    group.add_argument("--lottery-bleu-remove-bpe", default=None, nargs="?", const="subword_nmt",
                       metavar="SPEC", help="remove BPE before scoring, as fairseq-generate --remove-bpe "
                                            "(default when given without value: subword_nmt, i.e. '@@ ')")
    group.add_argument("--lottery-bleu-detok", default="space", choices=("space", "moses"),
                       help="detokenizer before sacrebleu's own tokenization (moses needs sacremoses)")
    group.add_argument("--lottery-bleu-tokenize", default="13a",
                       help="sacrebleu tokenizer for the detokenized score (13a, intl, zh, ...)")
    group.add_argument("--lottery-bleu-compound-split", action="store_true",
                       help="tokenized score: split hyphenated compounds (a-b -> a ##AT##-##AT## b) as the "
                            "Transformer papers' WMT En-De evaluation does")
    group.add_argument("--lottery-bleu-average-last", type=int, default=0, metavar="N",
                       help="average the round's last N saved checkpoints before BLEU (paper: checkpoint "
                            "averaging); 0 = use the final weights")
    group.add_argument("--lottery-bleu-max-sentences", type=int, default=0, metavar="N",
                       help="score only the first N test sentences (0 = all)")


def _fail(msg: str):
    raise LotteryConfigError(msg)


def lottery_config(args) -> LotteryConfig:
    return LotteryConfig.from_namespace(args, prefix="--lottery-")


def check_args(args) -> dict:
    """Validate the lottery flags against the fairseq flags; returns the spec the driver runs.

    Raises LotteryConfigError (one message naming the problem) before anything is trained or written."""
    config = lottery_config(args)
    max_update = getattr(args, "max_update", 0) or None
    max_epoch = getattr(args, "max_epoch", 0) or None
    if max_update is None and max_epoch is None:
        _fail("--lottery-prune needs a finite training length per round: give --max-update or --max-epoch")
    config.validate(total_updates=max_update, total_epochs=max_epoch)
    if config.ticket == "random":
        _check_masks_from(config.masks_from)
    task = getattr(args, "task", None)  # any task trains; translation and language modeling get test metrics
    if getattr(args, "no_save", False):
        _fail("--lottery-prune cannot be combined with --no-save: rounds resume from their checkpoints")
    if getattr(args, "restore_file", "checkpoint_last.pt") != "checkpoint_last.pt":
        _fail("--lottery-prune cannot be combined with --restore-file: each round restores its own "
              "SAVE_DIR/round_KK/checkpoint_last.pt (start round 0 from a model with the init snapshot instead)")
    if getattr(args, "finetune_from_model", None):
        _fail("--lottery-prune cannot be combined with --finetune-from-model")
    if getattr(args, "ddp_backend", None) == "fully_sharded":
        _fail("--lottery-prune does not support --ddp-backend fully_sharded (sharded parameters cannot be "
              "masked by name); use legacy_ddp or c10d")
    # --fp16 is allowed: FP16Optimizer's fp32 master copies start from the masked weights and get zero gradients
    if getattr(args, "lottery_eval_bleu", False) and task not in ("translation",):
        _fail(f"--lottery-eval-bleu needs --task translation (got --task {task})")
    if getattr(args, "lottery_bleu_average_last", 0) < 0:
        _fail("--lottery-bleu-average-last must be >= 0")
    if getattr(args, "lottery_bleu_beam", 5) < 1:
        _fail("--lottery-bleu-beam must be >= 1")
    if getattr(args, "lottery_bleu_detok", "space") == "moses":
        try:
            import sacremoses  # noqa: F401
        except ImportError:
            _fail("--lottery-bleu-detok moses needs the sacremoses package (pip install sacremoses)")
    if getattr(args, "lottery_bleu_tokenize", "13a"):
        from sacrebleu.metrics.bleu import _TOKENIZERS
        if args.lottery_bleu_tokenize not in _TOKENIZERS:
            _fail(f"--lottery-bleu-tokenize {args.lottery_bleu_tokenize!r} is not a sacrebleu tokenizer; "
                  f"choose one of: {', '.join(sorted(_TOKENIZERS))}")
    save_dir = getattr(args, "save_dir", "checkpoints")
    run_dir = args.lottery_run_dir or save_dir
    if config.ticket == "random" and os.path.abspath(config.masks_from) == os.path.abspath(run_dir):
        _fail("--lottery-masks-from must be another run directory than this run's own "
              f"({run_dir}); give the random ticket its own --save-dir")
    spec = {
        "config": config.to_dict(),
        "run_dir": os.path.abspath(run_dir),
        "save_dir": os.path.abspath(save_dir),
        "task": task,
        "settings": {k: _plain(getattr(args, k, None)) for k in IDENTITY_KEYS if hasattr(args, k)},
        "eval": {k[len("lottery_"):]: getattr(args, k) for k in vars(args)
                 if k.startswith("lottery_") and (k.startswith("lottery_bleu") or k in (
                     "lottery_eval_bleu", "lottery_test_subset", "lottery_no_test",
                     "lottery_lm_context_window"))},
    }
    return spec


def _plain(v):
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and math.isinf(v):
        return str(v)
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def _check_masks_from(path: Optional[str]) -> None:
    """The winning run must exist; its masks may still be coming (the random ticket waits for each, up to
    --lottery-mask-wait seconds, so that both can run side by side)."""
    from lth_plugins.errors import RunStoreError
    from lth_plugins.run import open_winning_run

    if not path or not os.path.isdir(path):
        _fail(f"--lottery-masks-from {path!r} is not a directory: give the run directory of a finished (or "
              f"running) winning-ticket experiment")
    if not os.path.isfile(os.path.join(path, "config.json")):
        return  # the winning ticket is starting: the run waits for it
    try:
        open_winning_run(path)
    except RunStoreError as e:
        _fail(f"--lottery-masks-from: {e}")
