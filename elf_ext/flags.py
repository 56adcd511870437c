"""Lottery flags and the paper's defaults in ELF's own style: an ``ArgsProvider`` and a ``Defaults`` dict.

ELF collects every flag from the ``ArgsProvider`` of each object in its environment and takes underscore
names (``--lottery_rate``); the lottery flags are generated from the core's ``LotteryConfig`` fields, so a
new core field is a new ELF flag.  ``PAPER_DEFAULTS`` (Table 1, Sec. 3.2.3) is what the model file exports
as ELF's ``Defaults``: ELF applies it to the defaults of its own flags, so every value stays a flag.
"""
import dataclasses
import re

from lth_plugins.hparams import FLAG_PREFIX, PATTERN_FIELDS, LotteryConfig

# ELF's own flags set to the paper's pixel-control setting (the rest are ELF's defaults).
PAPER_DEFAULTS = {
    "num_games": 1024,        # game threads
    "T": 6,                   # each thread blocks every 6 steps for training
    "batchsize": 128,         # time steps per training batch
    "entropy_ratio": 0.01,
    "ratio_clamp": 1.5,       # importance factor clamp
    "reward_clip": 1,         # rewards trained on clipped to [-1, 1] (lottery runs score games unclipped)
    "lr": 1e-3,               # Adam, betas (0.9, 0.999) (ELF's ModelInterface), eps 1e-3
    "adam_eps": 1e-3,
    "freq_update": 1,         # the acting copy is refreshed after every training batch
    "trainer_stats": "rewards",
    "additional_labels": "id,last_terminal",  # the actor batch carries game ids: per-episode rewards
    "keys_in_reply": "V,rv",  # ELF's Atari game reads every reply key (train_atari.sh)
}

# The round's length and the ticket reward (Sec. 3.2.2): N epochs of M training batches, the ticket reward
# is the mean game score of the last L finished games; ELF checkpoints kept per round.
ROUND_DEFAULTS = {"lottery_epochs": 25, "lottery_epoch_batches": 1000, "lottery_last_games": 1024,
                  "lottery_keep_checkpoints": 1}

# Flags that cannot change what a run computes: where files go, what is printed, ELF's checkpoint bookkeeping,
# threads and the device, the plain-ELF loop (lottery rounds have their own length), the batch labels the adapter
# asks for. Every other flag identifies a run (stored in its config.json; a rerun must repeat it, a random ticket
# must match its winning run's). The lottery_* fields of the core's LotteryConfig are stored apart.
NOT_TRAINING = (
    "rom_dir", "save_dir", "save_prefix", "latest_symlink", "record_dir", "command_line",
    "tqdm", "verbose_comm", "verbose_collector", "mcts_verbose", "mcts_verbose_time", "mcts_save_tree_filename",
    "trainer_stats", "num_minibatch", "num_episode", "gpu", "num_collectors", "torch_threads",
    "additional_labels", "lottery_prune", "lottery_run_dir", "lottery_keep_checkpoints",
    "seed",  # identifies the run through Setup.settings, beside the lottery seed
)


RUN_SEED_HELP = ("seed of the run: the model's init and ELF's Python-side draws (default: --lottery_seed when "
                 "given, else 0)")


def resolve_seeds(run_seed, lottery_seed):
    """(run seed, lottery seed): each follows the other when only one is given (the lottery seed follows the run's,
    as in every framework; runs made when ELF had only --lottery_seed used it for both), 0 when neither is."""
    if run_seed is None:
        run_seed = 0 if lottery_seed is None else lottery_seed
    return int(run_seed), int(run_seed if lottery_seed is None else lottery_seed)


def lottery_flag(name: str) -> str:
    """The ELF flag of a LotteryConfig field: `late_reset` -> `--lottery_late_reset`."""
    return "--lottery_" + name


def in_elf_spelling(message: str) -> str:
    """A message of the core with its lottery flags as ELF spells them: `--lottery-masks-from` ->
    `--lottery_masks_from`."""
    return re.sub(re.escape(FLAG_PREFIX) + r"([a-z0-9]+(?:-[a-z0-9]+)*)",
                  lambda m: lottery_flag(m.group(1).replace("-", "_")), message)


def _lottery_define_args():
    args = [("lottery_prune", dict(action="store_true",
                                   help="run lottery-ticket rounds (dense round 0, prune, reset, retrain); "
                                        "without it: ELF's plain training"))]
    for f in dataclasses.fields(LotteryConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name == "seed":
            default = None  # follows --seed (resolve_seeds)
        spec = dict(help=f.metadata.get("help", ""))
        if f.name in PATTERN_FIELDS:
            spec.update(type=str, default=",".join(default) or None)
            spec["help"] += "; several: comma separated"
        else:
            spec.update(type=int if f.name == "seed" else type(default) if default is not None else str,
                        default=default)
            if f.metadata.get("choices"):
                spec["choices"] = list(f.metadata["choices"])
        args.append(("lottery_" + f.name, spec))
    args += [
        ("seed", dict(type=int, default=None, help=RUN_SEED_HELP)),
        ("lottery_run_dir", dict(type=str, default=None,
                                 help="run directory (resumable; default: runs/elf_<rom>_s<seed>_<ticket>)")),
        ("lottery_epochs", dict(type=int, default=ROUND_DEFAULTS["lottery_epochs"],
                                help="N: epochs per round (the paper: 25)")),
        ("lottery_epoch_batches", dict(type=int, default=ROUND_DEFAULTS["lottery_epoch_batches"],
                                       help="M: training batches per epoch (the paper: 1000)")),
        ("lottery_last_games", dict(type=int, default=ROUND_DEFAULTS["lottery_last_games"],
                                    help="L: the ticket reward is the mean game score of the last L finished "
                                         "games of the round (the paper: 1024)")),
        ("lottery_keep_checkpoints", dict(type=int, default=ROUND_DEFAULTS["lottery_keep_checkpoints"],
                                          help="ELF checkpoints kept per round: the last N epochs' (1: the "
                                               "round's final one)")),
    ]
    return args


class LotteryArgs:
    """The ``lottery_*`` flags as an ELF ``ArgsProvider`` (group "LotteryArgs" in ELF's ``--help``)."""

    def __init__(self):
        from rlpytorch import ArgsProvider

        self.args = ArgsProvider(call_from=self, define_args=_lottery_define_args())

    @property
    def run_seed(self) -> int:
        return resolve_seeds(self.args.seed, self.args.lottery_seed)[0]

    def config(self) -> LotteryConfig:
        """The core configuration from the parsed flags (unvalidated)."""
        a = self.args
        values = {}
        for f in dataclasses.fields(LotteryConfig):
            v = getattr(a, "lottery_" + f.name)
            if f.name in PATTERN_FIELDS:
                v = tuple(p.strip() for p in (v or "").split(",") if p.strip())
            values[f.name] = v
        values["seed"] = resolve_seeds(a.seed, a.lottery_seed)[1]
        return LotteryConfig(**values)

    def check(self) -> None:
        """Raise ValueError naming the first round-length or retention flag that is not positive."""
        for name in ("lottery_epochs", "lottery_epoch_batches", "lottery_last_games", "lottery_keep_checkpoints"):
            v = getattr(self.args, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"--{name} must be a positive integer, got {v!r}")


class RunArgs:
    """How ``python -m elf_ext.train`` uses this machine (group "RunArgs" in ELF's ``--help``)."""

    def __init__(self):
        from rlpytorch import ArgsProvider

        self.args = ArgsProvider(call_from=self, define_args=[
            ("torch_threads", dict(type=int, default=0,
                                   help="torch threads of the trainer and the actor; 0: every core this process "
                                        "may use")),
        ])
