"""``python -m elf_ext.train``: ELF's ``train.py`` with lottery-ticket rounds (``--lottery_prune``).

    python -m elf_ext.train --rom_file breakout.bin --lottery_prune --lottery_run_dir runs/breakout_s0_wt

(``game``, ``model`` and ``model_file`` are read from the environment as ELF's train.py reads them; they default
to ELF's installed Atari game and this plugin's model.) Without ``--lottery_prune`` it is ELF's ``train.py``.
With it, one ELF game context plays through every round, each round run by the core's ``LotteryRun.round``
(reset, masks, a fresh Adam) on ELF's own ``Trainer``; the acting copy ``mi["actor"]`` is refreshed after the
reset. The games report raw scores: the trainer clips the rewards it learns from (``--reward_clip``) and the
ticket reward is the mean raw game score of the last L games. A rerun after a kill continues from the last
epoch's resume point of the unfinished round.
"""
import os
import sys

# ELF's game threads share the cores with torch's threads; libgomp reads this when torch is loaded: idle OpenMP
# threads then sleep instead of spinning (spinning made 2 torch threads several times slower than 1 beside ELF).
# Only the command sets it, before its imports load torch: an import (e.g. by `lth sweep`) changes no environment.
if __name__ == "__main__" and "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
OPENMP_THREADS_SLEEP = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import faulthandler  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402

from . import FRAMEWORK  # noqa: E402
from .checkpoints import RoundFiles  # noqa: E402
from .episodes import EpisodeTracker  # noqa: E402
from .flags import NOT_TRAINING, LotteryArgs, RunArgs, in_elf_spelling, lottery_flag  # noqa: E402
from .games import RomError, resolve_rom  # noqa: E402
from .paths import MODEL_NAME, ElfNotFoundError, atari_game_file, model_file  # noqa: E402

# Settings taken from the model, which needs the game's action set (ELF's emulators) to be built.
MODEL_KEYS = ("model", "parameter_shapes")
# All the settings an ELF run directory held when its identity was an allow-list and its ticket reward the sum
# of clipped rewards: such a run cannot be continued (its rounds would mix two ticket rewards).
ALLOW_LIST_SETTINGS = frozenset((
    "rom_file", "num_games", "batchsize", "T", "hist_len", "frame_skip", "reward_clip", "lr", "adam_eps",
    "entropy_ratio", "ratio_clamp", "adv_clip", "discount", "min_prob", "freq_update", "sample_policy", "epsilon",
    "lottery_epochs", "lottery_epoch_batches", "lottery_last_games") + MODEL_KEYS)


def load_env(environ, argv, **providers):
    """ELF's ``rlpytorch.load_env`` with an explicit command line (and no defaults shared between calls)."""
    from rlpytorch import ArgsProvider, ModelInterface, ModelLoader, Sampler
    from rlpytorch.model_loader import load_module

    game = load_module(environ["game"]).Loader()
    models_file = load_module(environ["model_file"])
    models = getattr(models_file, "Models", {})
    if environ["model"] not in models:
        raise ValueError(f"model={environ['model']!r} is not in {environ['model_file']}.py "
                         f"(it has: {', '.join(sorted(models)) or 'no Models'})")
    entry = models[environ["model"]]
    model_class, method_class = entry[0], entry[1]
    sampler_class = entry[2] if len(entry) > 2 else Sampler
    env = dict(game=game, method=method_class(), sampler=sampler_class(),
               model_loaders=[ModelLoader(model_class)], mi=ModelInterface(), **providers)
    parser = argparse.ArgumentParser(prog="python -m elf_ext.train", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    args = ArgsProvider.Load(parser, env, cmd_line=list(argv),
                             global_defaults=dict(getattr(models_file, "Defaults", {})),
                             global_overrides=dict(getattr(models_file, "Overrides", {})))
    return env, args


def resolve_environ(environ) -> dict:
    environ = dict(environ)
    environ.setdefault("model_file", model_file())
    environ.setdefault("model", MODEL_NAME)
    if not environ.get("game"):
        environ["game"] = atari_game_file()
    return environ


def parameter_shapes(model) -> dict:
    return {n: list(p.shape) for n, p in model.named_parameters()}


def torch_threads(requested: int) -> int:
    """Threads for torch: `requested`, or (0) every core this process may use, where idle OpenMP threads sleep
    (else 1: torch was loaded before OMP_WAIT_POLICY=PASSIVE could be set, and spinning threads starve ELF's)."""
    if requested > 0:
        return requested
    return max(1, len(os.sched_getaffinity(0))) if OPENMP_THREADS_SLEEP else 1


@dataclasses.dataclass
class Setup:
    """A parsed and checked command line, before any emulator exists."""
    env: dict
    args: object
    lottery: LotteryArgs
    run_args: RunArgs
    trainer: object
    runner: object
    config: Optional[object] = None      # LotteryConfig with --lottery_prune
    run_dir: Optional[Path] = None
    task: str = ""
    reward_clip: float = 0.0             # what the trainer clips rewards to (0: not at all)

    @property
    def prune(self) -> bool:
        return self.config is not None

    @property
    def run_seed(self) -> int:
        """The seed of the model's init and ELF's Python-side draws (flags.resolve_seeds)."""
        return self.lottery.run_seed

    def settings(self, model=None) -> dict:
        """The settings that identify the run: every ELF flag but those in NOT_TRAINING (lottery settings are
        stored apart), with the model's class and parameter shapes when `model` is given."""
        from lth_plugins.hparams import LotteryConfig
        from lth_plugins.settings import training_settings

        config_flags = {"lottery_" + f.name for f in dataclasses.fields(LotteryConfig)}
        values = dict(vars(self.args), rom_file=self.env["game"].args.rom_file)
        settings = training_settings(values, set(NOT_TRAINING) | config_flags, prefixes=())
        if self.prune and self.run_seed != self.config.seed:
            # absent when both seeds are one: runs stored when ELF had only the lottery seed used it for both
            settings["seed"] = self.run_seed
        if model is not None:
            settings.update(model=type(model).__name__, parameter_shapes=parameter_shapes(model))
        return settings


def prepare(argv, environ) -> Setup:
    """Parse and check the command line; raises ValueError (or ELF's and the core's errors) naming the problem."""
    from rlpytorch import SingleProcessRun, Trainer

    from lth_plugins.errors import LotteryConfigError
    from lth_plugins.hparams import flag_message
    from lth_plugins.store import default_run_dir

    given = sorted({a.split("=", 1)[0] for a in argv if a.startswith("--lottery_")} - {"--lottery_prune"})
    if given and "--lottery_prune" not in argv:
        raise ValueError(f"{', '.join(given)} given without --lottery_prune: without it this is ELF's plain "
                         f"training, which would ignore them; add --lottery_prune or drop them")
    trainer, runner, lottery, run_args = Trainer(), SingleProcessRun(), LotteryArgs(), RunArgs()
    env, args = load_env(environ, argv, trainer=trainer, runner=runner, lottery=lottery, run=run_args)
    setup = Setup(env=env, args=args, lottery=lottery, run_args=run_args, trainer=trainer, runner=runner)
    game_args = env["game"].args
    rom = resolve_rom(game_args.rom_file, game_args.rom_dir)
    game_args.rom_dir, game_args.rom_file = str(rom.parent), rom.name
    if not lottery.args.lottery_prune:
        return setup
    la = lottery.args
    lottery.check()
    try:
        setup.config = lottery.config().validate(total_updates=la.lottery_epochs * la.lottery_epoch_batches,
                                                 total_epochs=la.lottery_epochs,
                                                 updates_per_epoch=la.lottery_epoch_batches)
    except LotteryConfigError as e:
        raise LotteryConfigError(flag_message(e, spell=lottery_flag)) from None
    setup.task = rom.stem
    setup.run_dir = Path(la.lottery_run_dir or default_run_dir(FRAMEWORK, setup.task, setup.run_seed,
                                                               setup.config.ticket))
    labels = set(filter(None, (game_args.additional_labels or "").split(",")))
    game_args.additional_labels = ",".join(sorted(labels | {"id", "last_terminal"}))
    # The games report raw scores (ELF's own evaluation does so with --reward_clip -1); the trainer clips.
    setup.reward_clip = float(game_args.reward_clip) if game_args.reward_clip > 0 else 0.0
    game_args.reward_clip = -1
    return setup


def refuse_allow_list_runs(setup: Setup) -> None:
    """Raise LotteryConfigError when the run directory, or the run it takes masks or its dense round from, was
    written when ELF runs stored an allow-list of settings and scored tickets on clipped rewards."""
    from lth_plugins.errors import LotteryConfigError
    from lth_plugins.store import RunStore

    cfg = setup.config
    for path, role in ((setup.run_dir, "run directory"), (cfg.source_dir, "run it takes masks from"),
                       (cfg.dense_from, "dense_from run")):
        if not path:
            continue
        store = RunStore.view(path)
        settings = store.config.get("settings")
        if store.framework == FRAMEWORK and isinstance(settings, dict) and set(settings) <= ALLOW_LIST_SETTINGS:
            raise LotteryConfigError(
                f"{role} {path} was written by an earlier ELF adapter, whose ticket reward is the sum of clipped "
                f"rewards and which stored only some settings: it cannot be continued or reused (its rounds would "
                f"mix two ticket rewards). Its finished rounds stay readable (lth status, lth report); train in a "
                f"new run directory.")


def finished_before_games(setup: Setup) -> bool:
    """True when every round asked for is recorded in the run directory under these very settings: the run has
    nothing to do, and ELF's emulators need not be started. Any difference is left to LotteryRun to name."""
    from lth_plugins.store import RunStore, config_diff

    store = RunStore.view(setup.run_dir)
    if not store.config:
        return False
    current = {"lottery": setup.config.to_dict(), "framework": FRAMEWORK, "task": setup.task,
               "settings": setup.settings()}
    current = json.loads(json.dumps(current, default=str))
    model_keys = tuple(f"settings.{k}" for k in MODEL_KEYS)
    diff = [key for key, _, _ in config_diff(store.config, current) if not key.startswith(model_keys)]
    cfg = setup.config
    return not diff and all(store.round_done(k) for k in range(cfg.first_round, cfg.rounds + 1))


def pruned_nonzero(model, mask) -> int:
    """Entries of `model`'s parameters that `mask` prunes and that are not zero."""
    params = dict(model.named_parameters())
    return sum(int((params[n].detach()[~m.to(params[n].device)] != 0).sum()) for n, m in mask.items())


class LotteryTraining:
    """Every round of one run on one ELF game context; ELF's trainer and model interface do the training."""

    def __init__(self, setup: Setup, GC, model):
        self.setup, self.GC, self.model = setup, GC, model
        self.trainer, self.mi, self.config = setup.trainer, setup.env["mi"], setup.config
        la = setup.lottery.args
        self.epochs, self.epoch_batches = la.lottery_epochs, la.lottery_epoch_batches
        self.last_games, self.keep = la.lottery_last_games, la.lottery_keep_checkpoints
        self.total = self.epochs * self.epoch_batches
        self.tracker = EpisodeTracker(setup.reward_clip)
        self.round = None
        self.k: Optional[int] = None
        self.updates = self.start_update = self.steps = 0
        self.log_file = None

    # --- ELF callbacks (called by GC.Run in this thread) ---------------------------------------------
    def actor(self, batch):
        self.tracker.feed_batch(batch, self.updates)
        self.steps += batch["s"].size(1)
        return self.trainer.actor(batch)

    def train(self, batch):
        if self.updates >= self.total:  # a batch after the round's last update (none is expected)
            return
        if self.setup.reward_clip > 0:  # the games report raw scores; the agent learns from clipped rewards
            batch["last_r"].clamp_(-self.setup.reward_clip, self.setup.reward_clip)
        self.trainer.train(batch)
        self.updates = self.model.step
        self.round.after_update(self.updates, epoch=self.updates // self.epoch_batches)
        if self.updates % self.epoch_batches == 0:
            self._end_epoch(self.updates // self.epoch_batches)

    # --- rounds --------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"[elf {self.setup.task} {self.config.ticket} round {self.k}] {text}"
        print(line, flush=True)
        if self.log_file is not None:
            self.log_file.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
            self.log_file.flush()

    def wall(self) -> float:
        return self._wall_before + time.monotonic() - self._t0

    def _seed_epoch(self, epoch: int) -> None:
        """Python-side draws (ELF's action sampling) of each epoch start from a seed of the run's, whether the
        epoch follows another in this process or starts a resumed one."""
        import torch

        from lth_plugins.seeds import mixed_seed

        torch.manual_seed(mixed_seed(self.setup.run_seed, FRAMEWORK, self.k, epoch))

    def _check_masks_held(self) -> int:
        mask = self.round.mask
        revived = {"model": pruned_nonzero(self.model, mask), "acting copy": pruned_nonzero(self.mi["actor"], mask)}
        if any(revived.values()):
            from lth_plugins.errors import LotteryError

            raise LotteryError(f"round {self.k}: pruned weights are not zero after {self.updates} updates "
                               f"({', '.join(f'{n}: {c}' for n, c in revived.items())})")
        return mask.num_selected() - mask.num_surviving()

    def _end_epoch(self, epoch: int) -> None:
        from lth_plugins.rl import curve_entry

        self.round.after_epoch(epoch, num_updates=self.updates)
        self._check_masks_held()
        t = self.tracker
        entry = curve_entry(epoch, t.scores[self._games_at_epoch:], updates=self.updates, games=t.games,
                            steps=self.steps, wall_s=self.wall(), clipped=t.clipped[self._games_at_epoch:])
        self._games_at_epoch = t.games
        self.curve.append(entry)
        mean = f"{entry['mean_reward']:.2f}" if entry["mean_reward"] is not None else "-"
        self.log(f"epoch {epoch}/{self.epochs}: {self.updates}/{self.total} batches, "
                 f"{len(entry['episode_rewards'])} games finished (mean score {mean}), "
                 f"{self.steps / max(self.wall(), 1e-9):.1f} steps/s")
        self.trainer.episode_summary(epoch)  # ELF's statistics and its checkpoint of the round
        self.files.prune_elf_checkpoints()
        self.files.save_resume({
            "updates": self.updates, "epoch": epoch, "model": self.model.state_dict(),
            "optimizer": self.round.optimizer.state_dict(), "episodes": t.state(), "curve": self.curve,
            "steps": self.steps, "wall_s": self.wall(), "resumed_at": self.resumed_at})
        self.trainer.episode_start(epoch)
        self._seed_epoch(epoch)

    def _fresh_adam(self):
        """A fresh Adam for the round, as ELF's ModelInterface builds it (betas 0.9, 0.999)."""
        import torch

        a = self.setup.args
        optimizer = torch.optim.Adam(self.model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=a.adam_eps)
        self.mi.optimizers["model"] = optimizer
        return optimizer

    def train_round(self, run, k: int) -> None:
        """Round k from its reset (or its last epoch's resume point) to its record."""
        from lth_plugins.rl import PRIMARY

        self.k = k
        self.files = RoundFiles(run.store, k, self.keep)
        resume = self.files.load_resume()
        if resume is not None:
            self.model.load_state_dict(resume["model"])
        with run.round(k, self.model, optimizer=self._fresh_adam, resume=resume is not None,
                       num_updates=resume["updates"] if resume else None) as r:
            self._begin_round(r, resume)
            while self.updates < self.total:
                self.GC.Run()
            pruned = self._check_masks_held()
            self.log(f"all {pruned} pruned weights are zero in the model and in ELF's acting copy after "
                     f"update {self.updates}")
            r.finish(self.metrics(), primary=PRIMARY, higher_is_better=True, curve=self.curve,
                     training={"resumed_at_update": self.resumed_at})
        self.files.discard_resume()

    def _begin_round(self, r, resume: Optional[dict]) -> None:
        """The round's counters, optimizer state and games (from `resume` when given), ELF's acting copy
        refreshed with the round's masked weights, ELF's checkpoints pointed at the round's folder."""
        from lth_plugins.errors import RunStoreError

        self.round = r
        self.start_update = int(r.start.update or 0)  # late-reset rounds continue from update j
        self.tracker.new_round()
        if resume is not None:
            if not self.start_update <= resume["updates"] <= self.total:
                raise RunStoreError(f"resume point {self.files.resume_path} is at update {resume['updates']}, "
                                    f"outside round {self.k}'s updates {self.start_update}..{self.total}; delete "
                                    f"it to train the round again from its start")
            r.optimizer.load_state_dict(resume["optimizer"])
            self.tracker.restore(resume["episodes"])
        self.updates = resume["updates"] if resume else self.start_update
        self.model.step = self.updates
        self.mi.update_model("actor", self.model)
        self.curve = list(resume["curve"]) if resume else []
        self.steps = int(resume["steps"]) if resume else 0
        self.resumed_at = list(resume["resumed_at"]) + [self.updates] if resume else []
        self._wall_before = float(resume["wall_s"]) if resume else 0.0
        self._games_at_epoch = self.tracker.games
        self.files.attach_saver(self.trainer.saver)
        epoch = self.updates // self.epoch_batches
        self.trainer.episode_start(epoch)
        self._seed_epoch(epoch)
        if resume is not None:
            self.log(f"resumed at update {self.updates} (epoch {epoch}) from {self.files.resume_path}")
        self._t0 = time.monotonic()

    def metrics(self) -> dict:
        ticket = self.tracker.ticket_reward(self.last_games)
        wall = self.wall()
        m = {**ticket.metrics(), "games": self.tracker.games, "updates": self.updates - self.start_update,
             "start_update": self.start_update, "steps": self.steps, "wall_s": round(wall, 3),
             "steps_per_s": round(self.steps / max(wall, 1e-9), 3)}
        if self.tracker.scores:
            m["mean_reward_all_games"] = sum(self.tracker.scores) / len(self.tracker.scores)
        if ticket.note:
            self.log(f"ticket reward: {ticket.note} (train longer: more epochs or batches per epoch)")
        return m

    def run(self) -> None:
        """Train every pending round (the caller made sure there is one)."""
        from lth_plugins.run import LotteryRun

        s = self.setup
        la = s.lottery.args
        with LotteryRun(self.config, s.run_dir, task=s.task, framework=FRAMEWORK, settings=s.settings(self.model),
                        total_updates=self.total, total_epochs=self.epochs, updates_per_epoch=self.epoch_batches,
                        model=self.model) as run:
            for k in range(self.config.first_round, self.config.rounds + 1):
                if run.store.round_done(k):  # killed after its record, before its resume point went
                    RoundFiles(run.store, k, la.lottery_keep_checkpoints).discard_resume()
            if run.finished:
                return
            with open(run.store.log_path(), "a") as self.log_file:
                self.GC.reg_callback("train", self.train)
                self.GC.reg_callback("actor", self.actor)
                self.GC.Start()
                for k in run.pending_rounds():
                    self.train_round(run, k)


def _hard_exit(code: int) -> None:
    """Leave without running the C++ destructors of ELF's game threads (they crash or hang mid-game)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def play(setup: Setup) -> None:
    """ELF's training on one game context: plain ELF, or every lottery round."""
    import torch

    torch.set_num_threads(torch_threads(setup.run_args.args.torch_threads))
    env, args, trainer = setup.env, setup.args, setup.trainer
    torch.manual_seed(setup.run_seed)
    GC = env["game"].initialize()
    model = env["model_loaders"][0].load_model(GC.params)
    mi = env["mi"]
    mi.add_model("model", model, opt=True)
    mi.add_model("actor", model, copy=True, cuda=args.gpu is not None, gpu_id=args.gpu)
    trainer.setup(sampler=env["sampler"], mi=mi, rl_method=env["method"])
    if not setup.prune:  # ELF's train.py
        GC.reg_callback("train", trainer.train)
        GC.reg_callback("actor", trainer.actor)
        setup.runner.setup(GC, episode_summary=trainer.episode_summary, episode_start=trainer.episode_start)
        setup.runner.run()
        return
    LotteryTraining(setup, GC, model).run()
    GC.PrintSummary()
    GC.Stop()


def main(argv=None, environ=None) -> int:
    from lth_plugins.errors import run_command

    argv = sys.argv[1:] if argv is None else list(argv)
    faulthandler.enable()  # a crash in ELF's C++ game threads prints where Python was, not a bare exit 139
    prepared = {}

    def set_up():
        prepared["setup"] = setup = prepare(argv, resolve_environ(os.environ if environ is None else environ))
        if setup.prune:
            refuse_allow_list_runs(setup)
            if finished_before_games(setup):
                print(f"all {setup.config.rounds} rounds of {setup.run_dir} are done", flush=True)
                prepared["done"] = True

    code = run_command(set_up, failures=[((ElfNotFoundError, RomError, ValueError, KeyError, ImportError), "", 2)],
                       spell=in_elf_spelling)
    if code or prepared.get("done"):
        return code
    try:
        code = run_command(lambda: play(prepared["setup"]), spell=in_elf_spelling)
    except BaseException:
        print(f"error: the ELF run failed:\n{traceback.format_exc()}", file=sys.stderr)
        code = 1
    if code:
        _hard_exit(code)  # ELF's game threads may still run
    return 0


if __name__ == "__main__":
    sys.exit(main())
