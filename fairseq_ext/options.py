"""The `--lottery-*` flags of fairseq-train, and the run spec they make, validated before any training
(nothing written when a flag is refused)."""
import argparse
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Optional, Tuple

from lth_plugins.errors import LotteryConfigError, RunStoreError
from lth_plugins.hparams import FLAG_PREFIX, LotteryConfig, flag
from lth_plugins.sources import open_winning_run, refuse_non_run, winning_run_named
from lth_plugins.settings import training_settings
from lth_plugins.store import RunStore

from .spec import DEST_PREFIX, EvalOptions, LotterySpec


# fairseq settings that cannot change results: where files go, logging, checkpoint bookkeeping, how a
# checkpoint is restored (the --reset-* directives), data-loader workers and the process layout of one rank.
# Every other parsed setting (model, task, optimization, evaluation flags ...) is stored in the run's
# config.json: a rerun that changes one is refused, a random ticket must repeat its winning run's (seeds aside).
# The data folder is stored as its content (`data_fingerprint`), not its path: a copy of it elsewhere is the same data
# (its path is kept beside it, as `data_folder`, which a rerun may change).
NOT_TRAINING_SETTINGS = (
    "save_dir", "user_dir", "lottery_run_dir", "lottery_prune", "restore_file",
    "log_format", "log_interval", "log_file", "tensorboard_logdir", "wandb_project", "azureml_logging",
    "aim_repo", "aim_run_hash", "no_progress_bar", "profile", "reset_logging", "suppress_crashes",
    "save_interval", "save_interval_updates", "keep_interval_updates", "keep_interval_updates_pattern",
    "keep_last_epochs", "keep_best_checkpoints", "no_epoch_checkpoints", "no_last_checkpoints",
    "no_save_optimizer_state", "checkpoint_suffix", "checkpoint_shard_count", "write_checkpoints_asynchronously",
    "load_checkpoint_on_all_dp_ranks", "reset_optimizer", "reset_dataloader", "reset_meters",
    "reset_lr_scheduler", "num_workers", "data_buffer_size", "empty_cache_freq",
    "distributed_rank", "device_id", "local_rank", "distributed_port", "distributed_init_method",
    "distributed_no_spawn", "distributed_num_procs", "nprocs_per_node", "heartbeat_timeout",
    "all_gather_list_size", "bucket_cap_mb", "plasma_path", "no_seed_provided", "lottery_collective_timeout",
    "lottery_save_grace",
)


def add_lottery_args(parser: argparse.ArgumentParser) -> None:
    """Add the lottery flags (one group) to fairseq's training parser."""
    if any(a.dest == "lottery_prune" for a in parser._actions):
        return
    group = parser.add_argument_group("lottery ticket (lth-plugins)")
    group.add_argument(flag("prune"), action="store_true",
                       help="run the lottery-ticket procedure: dense round 0, then prune, reset and retrain for "
                            "--lottery-rounds rounds; round k's checkpoints go to SAVE_DIR/round_KK/")
    LotteryConfig.add_arguments(parser, prefix=FLAG_PREFIX, group_title="lottery ticket hyperparameters")
    group.add_argument(flag("run_dir"), default=None, metavar="DIR",
                       help="lottery run store (config, masks, snapshots, per-round metrics); default: --save-dir")
    group.add_argument(flag("collective_timeout"), type=float, default=None, metavar="SECONDS",
                       help="timeout of every collective of a distributed run (fairseq's all-reduces included); "
                            "default: torch's (NCCL 10 minutes, gloo 30 minutes). Rank 0's round evaluation is "
                            "not bounded by it: the other ranks wait for it outside any collective")
    group.add_argument(flag("save_grace"), type=float, default=180.0, metavar="SECONDS",
                       help="in a SLURM job that SLURM may requeue and that has a time limit: this many seconds "
                            "before it every rank stops at an update they agree on, saves the round's "
                            "checkpoint_last.pt and the job requeues itself, as on the warning sbatch sends "
                            "(its signal=USR1@SECONDS); at least two updates and a save must fit in it. 0: only "
                            "sbatch's warning (default: 180)")
    for f in dataclasses.fields(EvalOptions):
        if f.type is bool:
            group.add_argument(flag(f.name), action="store_true", help=f.metadata["help"])
        else:
            group.add_argument(flag(f.name), type=f.type, default=f.default, metavar=f.metadata["metavar"],
                               help=f.metadata["help"])


def _fail(msg: str):
    raise LotteryConfigError(msg)


def lottery_dests() -> Tuple[str, ...]:
    """The argparse dests of LotteryConfig's flags: stored apart, under "lottery", not among the settings."""
    return tuple(DEST_PREFIX + f.name for f in dataclasses.fields(LotteryConfig))


def build_spec(args, sources_exist: bool = True) -> LotterySpec:
    """Validate the lottery flags against the fairseq flags and build the spec the round loop runs. What depends
    on the data (updates per epoch) is checked when the round loop has loaded it. `sources_exist`: whether the
    winning run a ticket takes masks from must exist already (not in a sweep's dry run, where it is another job).

    Raises LotteryConfigError (one message naming the problem) before anything is trained or written."""
    save_dir = getattr(args, "save_dir", "checkpoints")
    run_dir = args.lottery_run_dir or save_dir
    stored = RunStore.view(run_dir).config
    config = LotteryConfig.from_namespace(args, prefix=FLAG_PREFIX, run_seed=run_seed(args, stored))
    evaluation = EvalOptions.from_namespace(args, prefix=DEST_PREFIX)
    max_update = getattr(args, "max_update", 0) or None
    max_epoch = getattr(args, "max_epoch", 0) or None
    if max_update is None and max_epoch is None:
        _fail("--lottery-prune needs a finite training length per round: give --max-update or --max-epoch")
    config.validate(total_updates=max_update, total_epochs=max_epoch)
    if config.takes_masks and sources_exist:
        _check_masks_from(config.source_dir, config.ticket.source_field)
    task = getattr(args, "task", None)  # any task trains; translation and language modeling get test metrics
    if getattr(args, "no_save", False):
        _fail("--lottery-prune cannot be combined with --no-save: rounds resume from their checkpoints")
    if getattr(args, "restore_file", "checkpoint_last.pt") != "checkpoint_last.pt":
        _fail("--lottery-prune cannot be combined with --restore-file: each round restores its own "
              "SAVE_DIR/round_KK/checkpoint_last.pt (start round 0 from a model with the init snapshot instead)")
    if getattr(args, "finetune_from_model", None):
        _fail("--lottery-prune cannot be combined with --finetune-from-model")
    if getattr(args, "zero_sharding", "none") == "os":
        _fail("--lottery-prune does not support --zero-sharding os: a sharded optimizer state is gathered by all "
              "ranks together at each save, and the save before a requeue or preemption is made by only some "
              "ranks (the job would hang there); drop --zero-sharding")
    if getattr(args, "ddp_backend", None) == "fully_sharded":
        _fail("--lottery-prune does not support --ddp-backend fully_sharded (sharded parameters cannot be "
              "masked by name); use legacy_ddp or c10d")
    # --fp16 is allowed: FP16Optimizer's fp32 master copies start from the masked weights and get zero gradients
    if evaluation.eval_bleu and task not in ("translation",):
        _fail(f"--lottery-eval-bleu needs --task translation (got --task {task})")
    if evaluation.bleu_average_last < 0:
        _fail("--lottery-bleu-average-last must be >= 0")
    if evaluation.eval_bleu:
        from .evaluate import parse_generate_args
        parse_generate_args(evaluation.generate_args)
        if getattr(args, "no_last_checkpoints", False):
            _fail("--lottery-eval-bleu scores the round's checkpoint_last.pt: drop --no-last-checkpoints")
    timeout = getattr(args, "lottery_collective_timeout", None)
    if timeout is not None and timeout <= 0:
        _fail(f"--lottery-collective-timeout must be > 0 seconds (got {timeout:g})")
    if getattr(args, "lottery_save_grace", 0) < 0:
        _fail(f"--lottery-save-grace must be >= 0 seconds (got {args.lottery_save_grace:g})")
    if config.takes_masks and os.path.abspath(config.source_dir) == os.path.abspath(run_dir):
        _fail(f"{flag(config.ticket.source_field)} must be another run directory than this run's own "
              f"({run_dir}); give the {config.ticket} ticket its own --save-dir")
    settings = training_settings(vars(args), not_training=NOT_TRAINING_SETTINGS + lottery_dests(), prefixes=())
    if settings.get("data"):
        fingerprint = data_fingerprint(settings["data"])  # a missing data folder is named before anything runs
        check_pair_dictionaries(args, settings["data"], fingerprint)
        if not _identified_by_path(run_dir, config):
            # where it lies is recorded apart (store.DATA_FOLDER_KEY), to name it when another run's data differs
            settings["data_folder"] = os.pathsep.join(os.path.abspath(d) for d in settings["data"].split(os.pathsep))
            settings["data"] = fingerprint
    return LotterySpec(config=config, run_dir=os.path.abspath(run_dir), save_dir=os.path.abspath(save_dir),
                       task=task, settings=settings, evaluation=evaluation, collective_timeout=timeout,
                       label=task_label(args))


def task_label(args) -> str:
    """The task as people name it: a translation with its language pair ("translation en-de", from -s/-t or, as
    fairseq does without them, from the data's file names), any other task by its name."""
    task = getattr(args, "task", None) or "fairseq"
    if task != "translation":
        return task
    source, target = getattr(args, "source_lang", None), getattr(args, "target_lang", None)
    data = str(getattr(args, "data", "") or "").split(os.pathsep)[0]
    if (not source or not target) and os.path.isdir(data):
        from fairseq.data.data_utils import infer_language_pair
        source, target = infer_language_pair(data)
    return f"{task} {source}-{target}" if source and target else task


def _check_masks_from(path: Optional[str], field: str) -> None:
    """The winning run (`field`: the setting that names it) must exist; its masks may still be coming (the ticket
    waits for each, up to --lottery-mask-wait seconds, so that both can run side by side)."""
    option = flag(field)
    if not path or not os.path.isdir(path):
        _fail(f"{option} {path!r} is not a directory: give the run directory of a finished (or "
              f"running) winning-ticket experiment")
    try:
        if RunStore.view(path).config:
            open_winning_run(path, field=field)
        else:  # the winning ticket is starting, and the run waits for it, unless the folder can never be a run
            refuse_non_run(Path(path), winning_run_named(field))
    except RunStoreError as e:
        _fail(str(e))


# fairseq's --lottery-seed defaulted to 0 whatever --seed was, before it followed --seed.
OLD_LOTTERY_SEED_DEFAULT = 0


def run_seed(args, stored: dict) -> int:
    """The seed an unset --lottery-seed follows: fairseq's --seed; but a run directory made when the flag defaulted
    to 0 (its config.json holds lottery seed 0 beside another --seed) keeps 0, so the command that made it still
    resumes it."""
    settings, lottery = stored.get("settings") or {}, stored.get("lottery") or {}
    if lottery.get("seed") == OLD_LOTTERY_SEED_DEFAULT and settings.get("seed") == args.seed:
        return OLD_LOTTERY_SEED_DEFAULT
    return args.seed


def _identified_by_path(run_dir, config: LotteryConfig) -> bool:
    """Whether the run's data is identified by its path, as runs stored before data fingerprints were: this run's
    directory, or the run it takes masks or its dense round from, stored one."""
    for path in (run_dir, config.masks_from, config.dense_from):
        if path and isinstance((RunStore.view(path).config.get("settings") or {}).get("data"), str):
            return True
    return False


def check_pair_dictionaries(args, data: str, fingerprint: dict) -> None:
    """A `--task translation` run's --source-lang and --target-lang have their dictionaries in the data folder, as
    that task loads them (fairseq itself would stop on a missing file with a traceback, after the lottery had
    started). Other tasks name their dictionaries otherwise."""
    if getattr(args, "task", None) != "translation":
        return
    folder = str(data).split(os.pathsep)[0]
    shard = shard_prefix(0, len(str(data).split(os.pathsep)))
    found = sorted(k[len(shard):] for k in fingerprint if k.startswith(shard + "dict"))
    for side in ("source", "target"):
        lang = getattr(args, f"{side}_lang", None)
        if lang and f"{shard}dict.{lang}.txt" not in fingerprint:
            _fail(f"the data folder {folder} has no dict.{lang}.txt for --{side}-lang {lang} (it holds "
                  f"{', '.join(found) or 'no dictionary'}): give the folder of that language pair, or its languages")


def shard_prefix(index: int, count: int) -> str:
    """How `data_fingerprint` names the files of the index-th of `count` data folders (none when there is one)."""
    return f"shard{index}/" if count > 1 else ""


def data_fingerprint(data: str) -> dict:
    """What identifies fairseq's data folder (or its shards, separated by os.pathsep) wherever it lies: the sha256
    of each dictionary, the size in bytes of each binarized file. Reads the dictionaries only."""
    folders = [Path(d) for d in str(data).split(os.pathsep)]
    out = {}
    for i, folder in enumerate(folders):
        if not folder.is_dir():
            _fail(f"the data folder {folder} does not exist" if not folder.exists() else
                  f"the data {folder} is not a folder: give fairseq-preprocess's --destdir")
        shard = shard_prefix(i, len(folders))
        for f in sorted(folder.iterdir()):
            if f.suffix == ".txt" and f.name.startswith("dict"):
                out[shard + f.name] = "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
            elif f.suffix in (".bin", ".idx"):
                out[shard + f.name] = f.stat().st_size
    if not out:
        _fail(f"the data folder {data} holds no fairseq data (no dict*.txt, *.bin or *.idx): give "
              f"fairseq-preprocess's --destdir")
    return out
