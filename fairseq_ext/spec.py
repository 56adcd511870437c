"""What `fairseq-train --lottery-prune` runs: the lottery configuration, where it writes, which settings
identify the run and how each round is scored. Built once from the parsed flags (`fairseq_ext.options`) and
handed to the round loop as it is (pickled to every rank when fairseq spawns them)."""
from dataclasses import dataclass, field, fields
from typing import Optional, Tuple

from lth_plugins.hparams import FLAG_PREFIX, LotteryConfig


def _flag(default, help: str, metavar: Optional[str] = None):
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class EvalOptions:
    """How a round is scored; each field is the flag --lottery-FIELD (underscores as dashes)."""

    eval_bleu: bool = _flag(False, "translation: after each round, score the round's checkpoint on the test split "
                                   "with fairseq-generate (its defaults, or --lottery-generate-args)")
    test_subset: str = _flag("test", "split used for BLEU / test perplexity (default: test)", "SPLIT")
    no_test: bool = _flag(False, "language modeling: skip the test-set log-perplexity (computed by default)")
    lm_context_window: int = _flag(0, "context window of the test perplexity, as `fairseq-eval-lm --context-window`",
                                   "N")
    generate_args: str = _flag("", "fairseq-generate options for the round's BLEU, in one string, e.g. "
                                    "\"--beam 4 --lenpen 0.6 --remove-bpe\" (default: none, i.e. fairseq-generate's "
                                    "own defaults); each round records the equivalent fairseq-generate command",
                               "'OPTIONS'")
    references: str = _flag("", "translation: score the round's BLEU and chrF with sacreBLEU on fairseq-generate's "
                                "detokenized output against the raw text DIR/SPLIT.TGT (e.g. OUT/en-X/raw of lth data "
                                "catalogs), recording their signatures (default: the BLEU fairseq-generate prints)",
                            "DIR")
    bleu_average_last: int = _flag(0, "average the round's last N saved checkpoints into round_KK/checkpoint_avgN.pt "
                                      "and score that (paper: checkpoint averaging); 0 = score checkpoint_last.pt",
                                   "N")

    @classmethod
    def from_namespace(cls, ns, prefix: str) -> "EvalOptions":
        return cls(**{f.name: getattr(ns, prefix + f.name) for f in fields(cls) if hasattr(ns, prefix + f.name)})


# The EvalOptions that change only how a finished round's checkpoint is scored: not what trains, nor which
# checkpoint is kept (the average is scored beside checkpoint_last.pt, the next mask comes from the trained model).
# A rerun may change them; rounds already scored keep their metrics, each recording what scored it.
SCORING_OPTIONS = ("generate_args", "references", "bleu_average_last", "test_subset", "lm_context_window")
DEST_PREFIX = FLAG_PREFIX.lstrip("-").replace("-", "_")  # where argparse keeps the lottery flags: lottery_rate ...
# the settings (argparse names) of the scoring options, which config.json's "scoring" declares
SCORING_SETTINGS = tuple(DEST_PREFIX + name for name in SCORING_OPTIONS)


@dataclass(frozen=True)
class LotterySpec:
    """One lottery run of fairseq-train: `config` (validated against the training length), the run store
    `run_dir`, fairseq's `save_dir` (round k checkpoints in SAVE_DIR/round_KK), the fairseq `task`, the
    `settings` that identify the run (stored in its config.json), the round `evaluation` and the timeout of the
    run's collectives in seconds (`collective_timeout`; None: torch's defaults) and the task as people name it
    (`label`, e.g. "translation en-de")."""

    config: LotteryConfig
    run_dir: str
    save_dir: str
    task: Optional[str]
    settings: dict
    evaluation: EvalOptions
    collective_timeout: Optional[float] = None
    label: Optional[str] = None

    @property
    def lm_test(self) -> bool:
        """Whether each round scores the test-set perplexity (language modeling, unless --lottery-no-test)."""
        return self.task == "language_modeling" and not self.evaluation.no_test

    @property
    def wants_test_split(self) -> bool:
        return self.evaluation.eval_bleu or self.lm_test

    @property
    def primary_metric(self) -> Tuple[str, bool]:
        """(the metric a round reports, whether higher is better)."""
        if self.evaluation.eval_bleu:
            return "bleu", True
        if self.lm_test:
            return "test_log_ppl", False
        return "valid_loss", False
