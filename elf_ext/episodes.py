"""Finished games and their scores, read from ELF's acting batches (``id``, ``last_r``, ``last_terminal``).

Every step of every game passes the actor once; ``last_r`` is the reward of the previous step, as the game
reports it (unclipped in lottery runs, see ``train.py``), and ``last_terminal`` marks the first state of the next
game, which closes the previous one (as in ELF's ``EvalCount.feed_batch``). Each game's raw score and the sum of
its rewards clipped to [-clip, clip] (what the agent trains on) are kept side by side.
"""
from typing import Dict, List, Optional, Set, Tuple

from lth_plugins.rl import TicketReward, ticket_reward


def clip_reward(r: float, clip: float) -> float:
    """ELF's clipping of one step's reward (``atari_game.cc``): none when clip <= 0."""
    return max(-clip, min(clip, r)) if clip > 0 else r


class EpisodeTracker:
    def __init__(self, reward_clip: float = 0.0):
        self.reward_clip = float(reward_clip)
        self.running: Dict[int, Tuple[float, float]] = {}  # game id -> (score, clipped sum) so far
        self.excluded: Set[int] = set()
        self.scores: List[float] = []        # finished games of this round, completion order: raw score
        self.clipped: List[float] = []       # the same games: sum of clipped rewards
        self.finished_at: List[int] = []     # training batches done when each game finished

    def new_round(self) -> None:
        """Games still running were partly played by the previous round's network: they are not counted."""
        self.excluded = set(self.running) | self.excluded
        self.running = {}
        self.scores, self.clipped, self.finished_at = [], [], []

    def feed(self, ids, last_r, last_terminal, updates: int = 0) -> None:
        for gid, r, term in zip(ids, last_r, last_terminal):
            gid, r = int(gid), float(r)
            if gid in self.excluded:
                if term:
                    self.excluded.discard(gid)
                    self.running[gid] = (0.0, 0.0)
                continue
            score, clipped = self.running.get(gid, (0.0, 0.0))
            score, clipped = score + r, clipped + clip_reward(r, self.reward_clip)
            if term:
                if gid in self.running:
                    self.scores.append(score)
                    self.clipped.append(clipped)
                    self.finished_at.append(updates)
                self.running[gid] = (0.0, 0.0)
            else:
                self.running[gid] = (score, clipped)

    def feed_batch(self, batch, updates: int = 0) -> None:
        self.feed(batch["id"][0].tolist(), batch["last_r"][0].tolist(), batch["last_terminal"][0].tolist(), updates)

    @property
    def games(self) -> int:
        return len(self.scores)

    def ticket_reward(self, last_games: int) -> TicketReward:
        """The paper's ticket reward on the raw game score of the last L finished games, the clipped beside it."""
        return ticket_reward(self.scores, last_games, clipped=self.clipped)

    def state(self) -> dict:
        """The finished games, for a resume checkpoint (running games die with the process's emulators)."""
        return {"scores": list(self.scores), "clipped": list(self.clipped), "finished_at": list(self.finished_at)}

    def restore(self, state: Optional[dict]) -> None:
        """A resumed round: its finished games back; the fresh emulators' games all start from their beginning."""
        state = state or {}
        self.running, self.excluded = {}, set()
        self.scores = [float(x) for x in state.get("scores", [])]
        self.clipped = [float(x) for x in state.get("clipped", [])]
        self.finished_at = [int(x) for x in state.get("finished_at", [])]
