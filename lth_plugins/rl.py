"""What reinforcement-learning adapters share: the ticket reward of a round (the paper's mean episodic reward of
the last L finished games) and the per-epoch learning-curve record."""
from dataclasses import dataclass
from typing import List, Optional, Sequence

from .record import partial_key

PRIMARY = "ticket_reward"
PARTIAL = partial_key(PRIMARY)


@dataclass(frozen=True)
class TicketReward:
    """The mean of the last `last_games` finished games' scores (raw game score; `clipped`: the same games'
    rewards as the agent trained on them, when the framework clips). `games` < `last_games` marks a value over
    fewer games than asked for; with none finished there is no value."""
    value: Optional[float]
    clipped: Optional[float]
    games: int
    last_games: int

    @property
    def partial(self) -> bool:
        return self.games < self.last_games

    @property
    def note(self) -> Optional[str]:
        """Why the value is not a full ticket reward (None when it is)."""
        if self.games == 0:
            return "no game finished in this round"
        if self.partial:
            return f"only {self.games} of the last {self.last_games} games finished"
        return None

    def metrics(self) -> dict:
        """The round's metrics.json entries: ticket_reward, ticket_reward_clipped, ticket_games, last_games and,
        for a value over fewer than L games, PARTIAL with the reason."""
        out = {PRIMARY: self.value, "ticket_games": self.games, "last_games": self.last_games}
        if self.clipped is not None:
            out["ticket_reward_clipped"] = self.clipped
        if self.note is not None:
            out[PARTIAL] = self.note
        return out


def _mean(values: Sequence[float]) -> Optional[float]:
    return float(sum(values) / len(values)) if values else None


def ticket_reward(scores: Sequence[float], last_games: int, clipped: Optional[Sequence[float]] = None) -> TicketReward:
    """The ticket reward over the last `last_games` entries of `scores` (finished games, in completion order);
    `clipped` lists the same games' clipped rewards, when the framework trains on clipped rewards."""
    if last_games < 1:
        raise ValueError(f"last_games must be >= 1, got {last_games}")
    tail = list(scores)[-last_games:]
    clipped_tail = list(clipped)[-last_games:] if clipped is not None else None
    return TicketReward(_mean(tail), _mean(clipped_tail) if clipped_tail is not None else None, len(tail),
                        last_games)


def curve_entry(epoch: int, episode_rewards: List[float], *, updates: int, games: int, steps: int,
                wall_s: Optional[float] = None, clipped: Optional[List[float]] = None) -> dict:
    """One epoch of a round's learning curve: the epoch's finished games (scores, their mean), and the
    updates, games and environment steps counted at its end."""
    entry = {"epoch": int(epoch), "updates": int(updates), "games": int(games),
             "mean_reward": _mean(episode_rewards), "steps": int(steps),
             "episode_rewards": [float(r) for r in episode_rewards]}
    if clipped is not None:
        entry["mean_reward_clipped"] = _mean(clipped)
    if wall_s is not None:
        entry["wall_s"] = round(float(wall_s), 3)
    return entry
