"""``python -m elf_ext.train``: ELF's ``train.py`` with lottery-ticket rounds (``--lottery_prune``).

    game=PATH/atari/game model=actor_critic_lottery model_file="$(lth elf-model-file)" \\
        python -m elf_ext.train --rom_file breakout.bin --lottery_prune --lottery_run_dir runs/breakout_s0_wt

(``game``, ``model`` and ``model_file`` default to ELF's installed Atari game and this plugin's model.)
Without ``--lottery_prune`` it is ELF's ``train.py``: the same objects, ELF's ``SingleProcessRun`` loop.
With it, one ELF game context plays through every round; each round resets the trained model through the
core's ``LotteryRun`` (dense round 0, prune, reset, retrain), gets a fresh Adam, refreshes ELF's acting copy
(``mi["actor"]``) and trains N epochs of M training batches in ELF's own ``Trainer``; the core's hooks keep
the pruned weights of ELF's model and optimizer at zero.  A rerun of the same command after a crash or kill
continues with the first unfinished round (restarted from its beginning).
"""
import argparse
import faulthandler
import os
import sys
import time
import traceback
from pathlib import Path

from .episodes import EpisodeTracker
from .flags import LotteryArgs
from .games import RomError, resolve_rom
from .paths import MODEL_NAME, ElfNotFoundError, atari_game_file, model_file

# ELF flags that define a round's training (stored in config.json: a resumed run must match).
TRAINING_FLAGS = ("rom_file", "num_games", "batchsize", "T", "hist_len", "frame_skip", "reward_clip", "lr",
                  "adam_eps", "entropy_ratio", "ratio_clamp", "adv_clip", "discount", "min_prob", "freq_update",
                  "sample_policy", "epsilon", "lottery_epochs", "lottery_epoch_batches", "lottery_last_games")


class ElfRunError(RuntimeError):
    """ELF's trainer or games failed; the message carries the error."""


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
    parser = argparse.ArgumentParser(prog="python -m elf_ext.train", description=__doc__.split("\n\n")[0])
    args = ArgsProvider.Load(parser, env, cmd_line=list(argv),
                             global_defaults=dict(getattr(models_file, "Defaults", {})),
                             global_overrides=dict(getattr(models_file, "Overrides", {})))
    return env, args


def parameter_shapes(model) -> dict:
    return {n: list(p.shape) for n, p in model.named_parameters()}


class LotteryTraining:
    """Every round of one run on one ELF game context; ELF's trainer and model interface do the training."""

    def __init__(self, env, args, lottery: LotteryArgs, GC, model, trainer, log=None):
        import torch

        self.env, self.args, self.GC, self.model, self.trainer = env, args, GC, model, trainer
        self.mi = env["mi"]
        la = lottery.args
        self.config = lottery.config()
        self.epochs, self.epoch_batches, self.last_games = la.lottery_epochs, la.lottery_epoch_batches, \
            la.lottery_last_games
        self.total = self.epochs * self.epoch_batches
        rom = Path(args.rom_file).stem
        self.task = rom
        self.run_dir = Path(la.lottery_run_dir or f"runs/elf_{rom}_s{self.config.seed}_{self.config.ticket}")
        self.settings = {k: getattr(args, k) for k in TRAINING_FLAGS if k in args}
        self.settings.update(model=type(model).__name__, parameter_shapes=parameter_shapes(model))
        self.tracker = EpisodeTracker()
        self.updates = 0
        self.steps = 0
        self.log_file = log
        self._torch = torch

    # --- ELF callbacks (called by GC.Run in this thread) ---------------------------------------------
    def actor(self, batch):
        self.tracker.feed_batch(batch, self.updates)
        self.steps += batch["s"].size(1)
        return self.trainer.actor(batch)

    def train(self, batch):
        if self.updates >= self.total:  # a batch after the round's last update (none is expected)
            return
        self.trainer.train(batch)
        self.updates = self.model.step
        self.lottery.after_update(self.model, self.updates, epoch=self.updates // self.epoch_batches)
        if self.updates % self.epoch_batches == 0:
            self._end_epoch(self.updates // self.epoch_batches)

    # --- rounds --------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"[elf {self.task} {self.config.ticket} round {self.round}] {text}"
        print(line, flush=True)
        if self.log_file is not None:
            self.log_file.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
            self.log_file.flush()

    def _end_epoch(self, epoch: int) -> None:
        self.lottery.after_epoch(self.model, epoch, num_updates=self.updates)
        rewards = self.tracker.rewards[self._games_at_epoch:]
        self._games_at_epoch = len(self.tracker.rewards)
        wall = time.monotonic() - self._t0
        entry = {"epoch": epoch, "updates": self.updates, "games": len(self.tracker.rewards),
                 "mean_reward": sum(rewards) / len(rewards) if rewards else None,
                 "episode_rewards": rewards, "steps": self.steps, "wall_s": round(wall, 3)}
        self.curve.append(entry)
        mean = f"{entry['mean_reward']:.2f}" if rewards else "-"
        self.log(f"epoch {epoch}/{self.epochs}: {self.updates}/{self.total} batches, {len(rewards)} games "
                 f"finished (mean reward {mean}), {self.steps / max(wall, 1e-9):.1f} steps/s")
        self.trainer.episode_summary(epoch)  # ELF's statistics and ModelSaver checkpoint of the round
        self.trainer.episode_start(epoch)

    def _start_round(self, k: int) -> None:
        import torch
        from rlpytorch.trainer.utils import SymLink

        run, model, mi = self.lottery, self.model, self.mi
        run.start_round(k, model)
        self.start_update = int(run.start_point(k).update or 0)  # late-reset rounds continue from update j
        model.step = self.start_update
        self.updates = self.start_update
        # a fresh Adam per round, as ELF's ModelInterface builds it (betas 0.9, 0.999)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.args.lr, betas=(0.9, 0.999),
                                          eps=self.args.adam_eps)
        mi.optimizers["model"] = self.optimizer
        mi.update_model("actor", model)  # the acting copy plays with the round's masked weights
        self.enforcer = run.enforce(model, self.optimizer)
        self.tracker.new_round()
        self.steps, self.curve, self._games_at_epoch = 0, [], 0
        save_dir = self.run_dir / "elf" / f"round_{k:02d}"
        save_dir.mkdir(parents=True, exist_ok=True)
        saver = self.trainer.saver
        saver.args.save_dir = str(save_dir)
        saver.symlinker = SymLink(str(save_dir / saver.args.latest_symlink))
        self.trainer.episode_start(self.start_update // self.epoch_batches)
        self._t0 = time.monotonic()

    def metrics(self) -> dict:
        wall = time.monotonic() - self._t0
        rewards = self.tracker.rewards
        m = {"games": len(rewards), "last_games": self.last_games, "updates": self.updates - self.start_update,
             "start_update": self.start_update,
             "steps": self.steps, "wall_s": round(wall, 3), "steps_per_s": round(self.steps / max(wall, 1e-9), 3)}
        if rewards:
            m["ticket_reward"] = self.tracker.ticket_reward(self.last_games)
            m["mean_reward_all_games"] = sum(rewards) / len(rewards)
        else:  # too short a round for one finished game: the unfinished games' rewards so far, marked
            running = list(self.tracker.running.values())
            m["ticket_reward"] = sum(running) / len(running) if running else 0.0
            m["ticket_reward_unfinished_games"] = True
            self.log("no game finished in this round: its ticket reward is the mean reward of the unfinished games")
        return m

    def run(self) -> bool:
        """Train every pending round; False when there was none (the game context was not started)."""
        from lth_plugins.run import LotteryRun

        self.lottery = LotteryRun(self.config, self.run_dir, task=self.task, framework="elf",
                                  settings=self.settings, total_updates=self.total, total_epochs=self.epochs,
                                  updates_per_epoch=self.epoch_batches, model=self.model)
        self.round = None
        try:
            if self.lottery.finished:
                print(f"all {self.config.rounds} rounds of {self.run_dir} are done", flush=True)
                return False
            if self.log_file is None:
                self.log_file = open(self.run_dir / "train.log", "a")
            self.GC.reg_callback("train", self.train)
            self.GC.reg_callback("actor", self.actor)
            self.GC.Start()
            for k in self.lottery.pending_rounds():
                self.round = k
                self._start_round(k)
                try:
                    while self.updates < self.total:
                        self.GC.Run()
                finally:
                    self.enforcer.remove()
                self.lottery.finish_round(k, self.model, self.metrics(), primary="ticket_reward",
                                          higher_is_better=True, curve=self.curve)
        finally:
            self.lottery.close()
            if self.log_file is not None:
                self.log_file.close()
        return True


def resolve_environ(environ) -> dict:
    environ = dict(environ)
    environ.setdefault("model_file", model_file())
    environ.setdefault("model", MODEL_NAME)
    if not environ.get("game"):
        environ["game"] = atari_game_file()
    return environ


def _hard_exit(code: int) -> None:
    """Leave without running the C++ destructors of ELF's game threads (they crash or hang mid-game)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv=None, environ=None) -> int:
    import torch

    from lth_plugins.errors import LotteryError

    argv = sys.argv[1:] if argv is None else list(argv)
    faulthandler.enable()  # a crash in ELF's C++ game threads prints where Python was, not a bare exit 139
    try:
        environ = resolve_environ(os.environ if environ is None else environ)
        from rlpytorch import SingleProcessRun, Trainer

        trainer, runner, lottery = Trainer(), SingleProcessRun(), LotteryArgs()
        env, args = load_env(environ, argv, trainer=trainer, runner=runner, lottery=lottery)
        game_args = env["game"].args
        rom = resolve_rom(game_args.rom_file, game_args.rom_dir)
        game_args.rom_dir, game_args.rom_file = str(rom.parent), rom.name
        prune = lottery.args.lottery_prune
        if prune:
            lottery.check()
            lottery.config().validate(total_updates=lottery.args.lottery_epochs * lottery.args.lottery_epoch_batches,
                                      total_epochs=lottery.args.lottery_epochs)
            labels = set(filter(None, (game_args.additional_labels or "").split(",")))
            game_args.additional_labels = ",".join(sorted(labels | {"id", "last_terminal"}))
    except (ElfNotFoundError, RomError, LotteryError, ValueError, KeyError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    try:
        torch.manual_seed(lottery.args.lottery_seed)
        GC = env["game"].initialize()
        model = env["model_loaders"][0].load_model(GC.params)
        mi = env["mi"]
        mi.add_model("model", model, opt=True)
        mi.add_model("actor", model, copy=True, cuda=args.gpu is not None, gpu_id=args.gpu)
        trainer.setup(sampler=env["sampler"], mi=mi, rl_method=env["method"])
        if not prune:  # ELF's train.py
            GC.reg_callback("train", trainer.train)
            GC.reg_callback("actor", trainer.actor)
            runner.setup(GC, episode_summary=trainer.episode_summary, episode_start=trainer.episode_start)
            runner.run()
            return 0
        training = LotteryTraining(env, args, lottery, GC, model, trainer)
        if training.run():
            GC.PrintSummary()
            GC.Stop()
        return 0
    except LotteryError as e:
        print(f"error: {e}", file=sys.stderr)
        _hard_exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        _hard_exit(130)
    except BaseException:
        print(f"error: the ELF run failed:\n{traceback.format_exc()}", file=sys.stderr)
        _hard_exit(1)


if __name__ == "__main__":
    sys.exit(main())
