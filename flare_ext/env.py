"""A gymnasium 1.x environment behind FLARE's Env interface: FLARE's own GymEnv needs the old gym API and
scipy.misc.imresize, neither of which exist here. Needs no FLARE import (FLARE never type-checks its Env).
"""
import warnings

import numpy as np

# gymnasium 1.x dropped LunarLander-v2 (the paper's version); v3 fixes v2's bugs and is the closest.
GAME_ALIASES = {"LunarLander-v2": "LunarLander-v3"}


def resolve_game(name: str, warn: bool = True) -> str:
    """Map a paper game name to the gymnasium 1.x id (LunarLander-v2 -> LunarLander-v3)."""
    new = GAME_ALIASES.get(name, name)
    if new != name and warn:
        warnings.warn(f"{name} does not exist in gymnasium 1.x; using {new} instead", stacklevel=2)
    return new


def make_gymnasium(game_name: str):
    import gymnasium

    with warnings.catch_warnings():
        # The paper's CartPole-v0 is "out of date" for gymnasium: said once per env, i.e. per agent and round.
        warnings.filterwarnings("ignore", message=r".*is out of date.*")
        return gymnasium.make(resolve_game(game_name, warn=False))


class OldGymAPI:
    """A gymnasium env seen through the old (gym < 0.26) API that FLARE was written for:
    ``reset()`` returns the observation only, ``step(a)`` returns ``(obs, reward, done, info)`` with
    ``done = terminated or truncated``; ``_max_episode_steps`` is the time limit.  ``info`` carries
    ``terminated`` / ``truncated``."""

    def __init__(self, env, seed=None):
        self.env = env
        self._seed = seed
        spec = getattr(env, "spec", None)
        self._max_episode_steps = getattr(spec, "max_episode_steps", None) or np.iinfo(np.int32).max
        self.observation_space = env.observation_space
        self.action_space = env.action_space

    def seed(self, seed=None):
        self._seed = seed
        return [seed]

    def reset(self):
        seed, self._seed = self._seed, None  # seed the first reset only: later episodes continue the stream
        obs, _ = self.env.reset(seed=seed)
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, terminated=bool(terminated), truncated=bool(truncated))
        return obs, float(reward), bool(terminated or truncated), info

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


class GymnasiumEnv:
    """FLARE ``Env`` for a gymnasium game, handed to FLARE's ``Agent.set_env(GymnasiumEnv, game_name=...,
    seed=...)``; same contract and episode semantics as FLARE's ``GymEnv`` (``reset()`` returns a dict of
    observations, ``step(actions, actrep)`` returns ``(observations, {"reward": [r]}, game_over)``; observations
    under ``"sensor"`` as float32, actions under ``"action"``, ``time_out()`` after ``max_episode_steps - 1``
    steps, ``game_over == -1`` when the game is done).

    ``seed`` seeds the env's first reset (agent ``i`` of a run gets ``seed`` + i)."""

    def __init__(self, game_name, show_frame=False, contexts=1, seed=None):
        assert contexts >= 1, "contexts must be a positive number!"
        self.game_name = resolve_game(game_name, warn=False)
        self.gym_env = OldGymAPI(make_gymnasium(self.game_name), seed=seed)
        self.contexts = contexts
        self.buf = None
        self.steps = 0
        self.show_frame = show_frame
        self.input_key = "sensor"
        self.action_key = "action"
        self.reward_key = "reward"
        self.truncated = False

    def reset(self):
        self.steps = 0
        self.truncated = False
        init_ob = self.preprocess_observation(self.gym_env.reset())
        self.buf = [np.zeros(init_ob.shape, dtype=init_ob.dtype) for _ in range(self.contexts - 1)]
        self.buf.append(init_ob)
        return {self.input_key: np.concatenate(self.buf)}

    def time_out(self):
        # FLARE's GymEnv: steps >= _max_episode_steps - 1.  A gymnasium truncation that comes earlier
        # (a TimeLimit shorter than the spec's) is a time-out too, never a failure.
        return self.truncated or self.steps >= self.gym_env._max_episode_steps - 1

    def render(self):
        self.gym_env.render()

    def step(self, actions, actrep=1):
        a = actions[self.action_key]
        if "int" in str(getattr(a, "dtype", type(a))):
            a = int(np.asarray(a).reshape(-1)[0])  # gymnasium wants a scalar for discrete actions
        total_reward = 0.0
        next_game_over = False
        self.steps += 1
        for _ in range(actrep):
            next_ob, reward, done, info = self.gym_env.step(a)
            total_reward += reward
            if info["truncated"] and not info["terminated"]:
                self.truncated = True
            else:
                next_game_over = next_game_over or done
            if done:
                break  # gymnasium refuses to step a finished episode
        next_ob = self.preprocess_observation(next_ob)
        self.buf.append(next_ob)
        if len(self.buf) > self.contexts:
            self.buf.pop(0)
        if self.show_frame:
            self.gym_env.render()
        return ({self.input_key: np.concatenate(self.buf)},
                {self.reward_key: [total_reward]},
                -1 if next_game_over else 0)

    def preprocess_observation(self, ob):
        return np.asarray(ob).astype("float32")

    def observation_dims(self):
        shape = self.gym_env.observation_space.shape
        return {self.input_key: (shape[0] * self.contexts,) + tuple(shape[1:])}

    def action_dims(self):
        import gymnasium

        space = self.gym_env.action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            return {self.action_key: int(space.n)}
        return {self.action_key: int(space.shape[0])}

    def action_range(self):
        import gymnasium

        space = self.gym_env.action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            return {self.action_key: range(space.n)}
        return {self.action_key: [space.low, space.high]}

    def close(self):
        self.gym_env.close()


def scale_reward(divisor: float):
    """The paper's reward shaping (immediate rewards divided by 100) as FLARE's ``reward_shaping_f``.
    A picklable callable, unlike FLARE examples' lambda."""
    return RewardScale(divisor)


class RewardScale:
    def __init__(self, divisor: float):
        if not divisor:
            raise ValueError("reward divisor must be non-zero")
        self.divisor = float(divisor)

    def __call__(self, r):
        return r / self.divisor

    def __repr__(self):
        return f"RewardScale({self.divisor:g})"
