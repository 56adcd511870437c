"""One watched round of FLARE's own pipeline (fresh agents and Manager around a FLARE algorithm): per-game reports
from the agents, update and epoch callbacks on FLARE's optimizer, agent crashes raised as FlareRunError instead of
FLARE's hang, and forked children that die with the main process.
"""
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from queue import Empty
from typing import Callable, List, Optional

import torch

from lth_plugins.children import die_with_parent
from lth_plugins.errors import INTERRUPTED
from lth_plugins.rl import TicketReward, curve_entry, ticket_reward

from .env import GymnasiumEnv, RewardScale


def child_of_round(run: Callable[[], None], parent: int) -> Callable[[], None]:
    """`run` of a process forked for a round (FLARE's agents and its logger), made to die with the main process
    `parent` (a SIGKILL or SIGTERM of it leaves no orphan) and to ignore Ctrl-C (the main process stops FLARE,
    which stops them; an agent re-enables it)."""
    def run_in_child():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent(signal.SIGKILL, parent)
        run()
    return run_in_child


class FlareRunError(RuntimeError):
    """A FLARE agent (or FLARE's trainer thread) failed; the message carries its error."""


def split_games(total_games: int, num_agents: int) -> List[int]:
    """Games per agent so that they add up to exactly `total_games` (FLARE's agents run a fixed count)."""
    if num_agents < 1 or total_games < num_agents:
        raise ValueError(f"need at least one game per agent: {total_games} games for {num_agents} agents")
    base, extra = divmod(total_games, num_agents)
    return [base + (1 if i < extra else 0) for i in range(num_agents)]


def epoch_curve(rewards, steps, updates_at_game, games_per_epoch: int, wall_at_game=None,
                first_game: int = 0) -> list:
    """The round's learning curve, one entry per epoch of M games (in completion order), counted at the epoch's
    last game. `first_game`: games the round's start point had already played (a round continuing at epoch e+1
    of the dense schedule); epochs keep the dense round's numbers."""
    curve = []
    end = first_game + len(rewards)
    for e in range(first_game // games_per_epoch, math.ceil(end / games_per_epoch) if rewards else 0):
        lo, hi = max(e * games_per_epoch, first_game), min((e + 1) * games_per_epoch, end)
        here = slice(lo - first_game, hi - first_game)  # the epoch's games in this round's lists
        last = here.stop - 1
        curve.append(curve_entry(e + 1, rewards[here], updates=updates_at_game[last], games=hi,
                                 steps=sum(steps[here]),
                                 wall_s=wall_at_game[last] if wall_at_game is not None else None))
    return curve


@dataclass
class RoundResult:
    """What one round of FLARE training left: every finished game's score and steps, with the update counter and
    the wall time when it finished."""
    rewards: List[float] = field(default_factory=list)  # unscaled episodic rewards, completion order
    steps: List[int] = field(default_factory=list)
    updates_at_game: List[int] = field(default_factory=list)  # the update counter (from the start point)
    wall_at_game: List[float] = field(default_factory=list)
    updates: int = 0  # optimizer steps of this round
    first_game: int = 0  # games of the dense schedule before this round's start point
    end_update: int = 0
    wall_s: float = 0.0
    flare_stats: object = None

    @property
    def games(self) -> int:
        return len(self.rewards)

    @property
    def games_per_s(self) -> float:
        return self.games / self.wall_s if self.wall_s > 0 else float("nan")

    def ticket(self, last_games: int) -> TicketReward:
        """The ticket reward: the mean game score of the last `last_games` games (FLARE's rewards are unclipped)."""
        return ticket_reward(self.rewards, last_games)

    def curve(self, games_per_epoch: int) -> list:
        return epoch_curve(self.rewards, self.steps, self.updates_at_game, games_per_epoch, self.wall_at_game,
                           first_game=self.first_game)


_AGENT_CLASSES = {}


def reporting_agent_class(base):
    """A subclass of a FLARE agent class (e.g. ``SimpleRLAgent``) that reports every finished game and
    any crash to the main process; FLARE's control flow is untouched."""
    if base in _AGENT_CLASSES:
        return _AGENT_CLASSES[base]

    class ReportingAgent(base):
        def __init__(self, *args, report_q=None, error_q=None, torch_threads=1, **kwargs):
            super().__init__(*args, **kwargs)
            self._report_q, self._error_q, self._torch_threads = report_q, error_q, torch_threads

        def run(self):
            try:
                if self._torch_threads:
                    torch.set_num_threads(self._torch_threads)
                # The fork inherited Manager's Ctrl-C handler (meant for the main process): restore Python's.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                super().run()
            except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the main process reports it
                self.running.value = 0
                raise SystemExit(INTERRUPTED) from None
            except BaseException:
                self.running.value = 0
                if self._error_q is None:
                    raise
                # The main process reports it (FlareRunError); exit code 1 without a second traceback.
                self._error_q.put((self.id, traceback.format_exc()))
                raise SystemExit(1) from None

        def _total_reward(self):  # FLARE calls this once at the end of every game
            entry = self.log_entry
            if self._report_q is not None:
                self._report_q.put((self.id, float(getattr(entry, "total_reward", 0.0)),
                                    int(getattr(entry, "num_steps", 0))))
            return super()._total_reward()

    ReportingAgent.__name__ = ReportingAgent.__qualname__ = "Reporting" + base.__name__
    _AGENT_CLASSES[base] = ReportingAgent
    return ReportingAgent


class WatchedRound:
    """One round of FLARE's own pipeline, watched: fresh agents and Manager around `alg`, per-game reports, update
    and epoch callbacks on FLARE's optimizer, and any agent or FLARE thread failure raised as FlareRunError
    (FLARE itself hangs or exits 0 when an agent dies). See `run_round` for the arguments."""

    def __init__(self, flare, alg, *, game, num_agents, total_games, games_per_epoch, reward_divisor,
                 sample_interval, env_seed, env_class, env_kwargs, on_update, on_epoch, on_epoch_end_log,
                 print_interval, torch_threads, agent_base, poll_s, start_update, start_games):
        import multiprocessing as mp

        self.alg, self.total_games, self.games_per_epoch = alg, total_games, games_per_epoch
        self.on_update, self.on_epoch, self.on_epoch_end_log = on_update, on_epoch, on_epoch_end_log
        self.poll_s, self.start_games, self.start_update = poll_s, start_games, start_update
        self.report_q, self.error_q = mp.Queue(), mp.Queue()
        Agent = reporting_agent_class(agent_base or flare.SimpleRLAgent)
        shaping = RewardScale(reward_divisor)
        self.agents = []
        for i, n in enumerate(split_games(total_games, num_agents)):
            agent = Agent(n, reward_shaping_f=shaping, report_q=self.report_q, error_q=self.error_q,
                          torch_threads=torch_threads)
            agent.set_env(env_class, game_name=game, seed=env_seed + i, **(env_kwargs or {}))
            self.agents.append(agent)
        self.manager = flare.Manager({"RL": dict(alg=alg, agent_helper=flare.OnlineHelper,
                                                 sample_interval=sample_interval)},
                                     dict(print_interval=print_interval))
        self.manager.add_agents(self.agents)
        self.games, self.updates = 0, start_update
        self.error: Optional[str] = None
        self.thread_errors: List[str] = []
        self.done = threading.Event()
        self.result = RoundResult(first_game=start_games)
        self.n_epochs = math.ceil((start_games + total_games) / games_per_epoch)
        self.epochs_done = start_games // games_per_epoch
        self.epoch_lock = threading.Lock()
        self.t0 = time.monotonic()

    # --- what FLARE's threads call ------------------------------------------------------------------------
    def fire_epochs(self, final: bool = False) -> None:
        """Report every epoch whose games have all finished (`final`: the round's last epochs)."""
        with self.epoch_lock:
            while self.epochs_done < self.n_epochs and (
                    self.start_games + self.games >= (self.epochs_done + 1) * self.games_per_epoch
                    or (final and self.games >= self.total_games)):
                self.epochs_done += 1
                e = self.epochs_done
                if self.on_epoch is not None:
                    self.on_epoch(e, self.updates, self.start_games + self.games)
                if self.on_epoch_end_log is not None:
                    lo = max((e - 1) * self.games_per_epoch - self.start_games, 0)
                    self.on_epoch_end_log(e, self.result.rewards[lo:e * self.games_per_epoch - self.start_games])

    def after_step(self, optimizer, args, kwargs) -> None:
        """FLARE's trainer thread, inside SimpleAlgorithm.learn: one update done."""
        self.updates += 1
        try:
            if self.on_update is not None:
                self.on_update(self.updates, self.start_games + self.games)
            self.fire_epochs()
        except BaseException:
            self.error = self.error or ("the training step failed:\n" + traceback.format_exc())
            raise

    def recording_failures(self, run: Callable[[], None]) -> Callable[[], None]:
        """`run` of one of FLARE's threads, keeping the traceback of its failure for the round's error."""
        def run_recorded():
            try:
                run()
            except BaseException:
                self.thread_errors.append(traceback.format_exc())
                raise
        return run_recorded

    # --- the watcher thread -------------------------------------------------------------------------------
    def drain(self, block: bool) -> bool:
        """Take one game report from the agents, if there is one."""
        try:
            _, reward, steps = self.report_q.get(timeout=self.poll_s) if block else self.report_q.get_nowait()
        except Empty:
            return False
        r = self.result
        r.rewards.append(reward)
        r.steps.append(steps)
        r.updates_at_game.append(self.updates)
        r.wall_at_game.append(time.monotonic() - self.t0)
        self.games += 1
        return True

    def reported_crash(self, timeout=None) -> Optional[str]:
        """The first traceback a crashed agent sent, as an error message, or None."""
        try:
            aid, tb = self.error_q.get(timeout=timeout) if timeout else self.error_q.get_nowait()
        except Empty:
            return None
        return f"FLARE agent {aid} crashed:\n{tb}"

    def stop_agents(self) -> None:
        """Stop every agent and unblock FLARE's Manager.start (it busy-waits on `running`)."""
        for a in self.agents:
            if a.is_alive():
                a.terminate()
        for a in self.agents:
            a.join(timeout=10)
        for a in self.agents:
            # Manager.start first waits until every agent reported running=1, then joins them; the CDP
            # threads exit on Manager's stop(). Dead agents marked running let both steps pass.
            a.running.value = 1

    def dead_agent(self) -> Optional[str]:
        for a in self.agents:
            if a.exitcode not in (None, 0):
                return self.reported_crash(timeout=1.0) or f"FLARE agent {a.id} (pid {a.pid}) died with exit " \
                                                           f"code {a.exitcode}"
        return None

    def dead_trainer(self, started: bool) -> bool:
        """FLARE's CDP threads only return by themselves once every agent set running=0: one that ended while
        agents still run has failed."""
        for cdp in self.manager.CDPs.values():
            threads = (cdp.training_thread, cdp.prediction_thread)
            if started and not cdp.exit_flag and any(t.ident and not t.is_alive() for t in threads) \
                    and any(a.running.value and a.is_alive() for a in self.agents):
                return True
        return False

    def watch(self) -> None:
        """Record the first error, stop the other agents, let Manager.start return."""
        started = False
        while not self.done.is_set():
            self.drain(block=True)
            self.error = self.error or self.reported_crash() or self.dead_agent()
            started = started or any(not cdp.exit_flag for cdp in self.manager.CDPs.values())
            if self.error is None and self.dead_trainer(started):
                self.error = "FLARE's trainer thread died (see its traceback above)"
            if self.error is not None:
                self.stop_agents()
                return

    # --- the round ------------------------------------------------------------------------------------------
    def run(self) -> RoundResult:
        parent = os.getpid()
        for process in [self.manager.logger, *self.agents]:
            process.run = child_of_round(process.run, parent)
        for cdp in self.manager.CDPs.values():
            for thread in (cdp.training_thread, cdp.prediction_thread):
                thread.run = self.recording_failures(thread.run)
        hook = self.alg.optim.register_step_post_hook(self.after_step)
        watcher = threading.Thread(target=self.watch, name="flare_ext-watcher", daemon=True)
        watcher.start()
        sigint = signal.getsignal(signal.SIGINT)  # FLARE's Manager.start installs its own
        try:
            try:
                self.manager.start()
            except SystemExit as e:  # FLARE's own Ctrl-C handler calls sys.exit(0)
                if e.code in (0, None):
                    raise KeyboardInterrupt("FLARE run interrupted") from None
                raise
        finally:
            signal.signal(signal.SIGINT, sigint)
            self.done.set()
            watcher.join()
            hook.remove()
            self.result.wall_s = time.monotonic() - self.t0
        while self.drain(block=False):
            pass
        error = self.final_error()
        if error is not None:
            raise FlareRunError(error)
        self.fire_epochs(final=True)
        r = self.result
        r.updates, r.end_update = self.updates - self.start_update, self.updates
        r.flare_stats = getattr(self.manager, "stats", None)
        return r

    def final_error(self) -> Optional[str]:
        """What failed in the round, or None."""
        error = self.error or self.reported_crash()
        if error is None:
            bad = [a for a in self.agents if a.exitcode not in (None, 0)]
            if bad:
                error = f"FLARE agent {bad[0].id} died with exit code {bad[0].exitcode}"
        if error is not None and self.thread_errors and "trainer thread" in error:
            error += "\n" + self.thread_errors[0]
        if error is None and self.thread_errors:
            error = "a FLARE thread failed:\n" + self.thread_errors[0]
        if error is None and self.result.games != self.total_games:
            error = f"FLARE agents finished {self.result.games} of {self.total_games} games"
        return error


def run_round(flare, alg, *, game: str, num_agents: int, total_games: int, games_per_epoch: int,
              reward_divisor: float = 100.0, sample_interval: int = 4, env_seed: Optional[int] = None,
              env_class=GymnasiumEnv, env_kwargs: Optional[dict] = None,
              on_update: Optional[Callable[[int, int], None]] = None,
              on_epoch: Optional[Callable[[int, int, int], None]] = None,
              on_epoch_end_log: Optional[Callable[[int, list], None]] = None,
              print_interval: int = 100, torch_threads: int = 1, agent_base=None,
              poll_s: float = 0.2, start_update: int = 0, start_games: int = 0) -> RoundResult:
    """Train `alg` (a FLARE algorithm whose model/optimizer live here) for `total_games` games with
    `num_agents` fresh FLARE agents under a fresh FLARE Manager.  `on_update(n, games)` runs after each of
    FLARE's optimizer steps (n: the update counter, games: games finished), `on_epoch(e, n, games)` at the
    first update after the e-th block of `games_per_epoch` games finished (and, for the last epochs, when the
    round ends).  A round continuing the dense schedule from its start point counts updates from
    `start_update` and games (hence epochs) from `start_games`.  Raises FlareRunError on an agent crash."""
    if env_seed is None:
        env_seed = int(torch.randint(0, 2**31 - 1, ()).item())
    return WatchedRound(flare, alg, game=game, num_agents=num_agents, total_games=total_games,
                        games_per_epoch=games_per_epoch, reward_divisor=reward_divisor,
                        sample_interval=sample_interval, env_seed=env_seed, env_class=env_class,
                        env_kwargs=env_kwargs, on_update=on_update, on_epoch=on_epoch,
                        on_epoch_end_log=on_epoch_end_log, print_interval=print_interval,
                        torch_threads=torch_threads, agent_base=agent_base, poll_s=poll_s,
                        start_update=start_update, start_games=start_games).run()


def build_model(flare, obs_dim: int, num_actions: int, hidden, seed: Optional[int] = None):
    """FLARE's ``SimpleModelAC`` on an MLP perception net (Linear+ReLU per hidden layer), as in FLARE's
    a2c example; the policy and value heads share the perception net."""
    import torch.nn as nn

    if seed is not None:
        torch.manual_seed(seed)
    layers, width = [], obs_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    mlp = nn.Sequential(*layers)
    return flare.SimpleModelAC(dims=(obs_dim,), num_actions=num_actions, perception_net=mlp)


def build_algorithm(flare, model, *, lr: float, alpha: float = 0.99, eps: float = 1e-8,
                    discount: float = 0.99, value_weight: float = 1.0, entropy_weight: float = 0.01,
                    grad_clip: Optional[float] = None, algorithm_class=None):
    """FLARE's ``SimpleAC`` with RMSprop (the paper: lr 1e-4, alpha 0.99, eps 1e-8).  A fresh algorithm
    (hence a fresh FLARE optimizer) per round, around the same model object."""
    cls = algorithm_class or flare.SimpleAC
    return cls(model=model, gpu_id=-1, discount_factor=discount, value_cost_weight=value_weight,
               prob_entropy_weight=entropy_weight,
               optim=(torch.optim.RMSprop, dict(lr=lr, alpha=alpha, eps=eps)), grad_clip=grad_clip)


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except Exception:
        return False
