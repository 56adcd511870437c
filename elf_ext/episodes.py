"""Finished games and their episodic rewards, from ELF's acting batches (``id``, ``last_r``, ``last_terminal``).

Every step of every game passes the actor once; ``last_r`` is the reward of the previous step (clipped by
the game's ``--reward_clip``, as ELF's own reward statistics see it) and ``last_terminal`` marks the first
state of the next game, which closes the previous one (as in ELF's ``EvalCount.feed_batch``).
"""
from typing import Dict, List, Set


class EpisodeTracker:
    def __init__(self):
        self.running: Dict[int, float] = {}
        self.excluded: Set[int] = set()
        self.rewards: List[float] = []       # finished games of this round, completion order
        self.finished_at: List[int] = []     # training batches done when each game finished

    def new_round(self) -> None:
        """Games still running were partly played by the previous round's network: they are not counted."""
        self.excluded = set(self.running) | self.excluded
        self.running = {}
        self.rewards, self.finished_at = [], []

    def feed(self, ids, last_r, last_terminal, updates: int = 0) -> None:
        for gid, r, term in zip(ids, last_r, last_terminal):
            gid, r = int(gid), float(r)
            if gid in self.excluded:
                if term:
                    self.excluded.discard(gid)
                    self.running[gid] = 0.0
                continue
            if term:
                if gid in self.running:
                    self.rewards.append(self.running[gid] + r)
                    self.finished_at.append(updates)
                self.running[gid] = 0.0
            else:
                self.running[gid] = self.running.get(gid, 0.0) + r

    def feed_batch(self, batch, updates: int = 0) -> None:
        self.feed(batch["id"][0].tolist(), batch["last_r"][0].tolist(), batch["last_terminal"][0].tolist(), updates)

    def ticket_reward(self, last_games: int) -> float:
        """The paper's ticket reward: mean episodic reward of the last L finished games."""
        tail = self.rewards[-last_games:]
        if not tail:
            raise ValueError("no game finished in this round: no ticket reward (train longer: more epochs "
                             "or batches per epoch)")
        return sum(tail) / len(tail)
