"""The gymnasium bridge behind FLARE's Env interface, on real gymnasium envs (no FLARE needed)."""
import pickle

import gymnasium
import numpy as np
import pytest

from flare_ext.env import GymnasiumEnv, OldGymAPI, RewardScale, resolve_game, scale_reward

GAMES = [("CartPole-v0", 4, 2, 200), ("Acrobot-v1", 6, 3, 500), ("LunarLander-v3", 8, 4, 1000)]


def int_action(a):
    return {"action": np.array([a], dtype="int64")}  # what FLARE's agents hand to Env.step


@pytest.mark.parametrize("game,obs_dim,n_actions,max_steps", GAMES)
def test_bridge_contract(game, obs_dim, n_actions, max_steps):
    env = GymnasiumEnv(game, seed=3)
    assert env.observation_dims() == {"sensor": (obs_dim,)}
    assert env.action_dims() == {"action": n_actions}
    assert list(env.action_range()["action"]) == list(range(n_actions))
    assert env.gym_env._max_episode_steps == max_steps
    obs = env.reset()
    assert set(obs) == {"sensor"} and obs["sensor"].dtype == np.float32 and obs["sensor"].shape == (obs_dim,)
    assert not env.time_out()
    nxt, rewards, game_over = env.step(int_action(0))
    assert set(nxt) == {"sensor"} and nxt["sensor"].dtype == np.float32
    assert set(rewards) == {"reward"} and len(rewards["reward"]) == 1 and isinstance(rewards["reward"][0], float)
    assert game_over in (0, -1) and isinstance(game_over, int)
    assert env.steps == 1
    env.close()


@pytest.mark.parametrize("game", [g[0] for g in GAMES])
def test_seeded_first_reset_is_reproducible(game):
    a, b, c = GymnasiumEnv(game, seed=11), GymnasiumEnv(game, seed=11), GymnasiumEnv(game, seed=12)
    oa, ob, oc = a.reset()["sensor"], b.reset()["sensor"], c.reset()["sensor"]
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)
    # later episodes continue the seeded stream instead of replaying the first one
    assert not np.array_equal(a.reset()["sensor"], oa) or game == "LunarLander-v3"


def test_cartpole_failure_is_game_over_minus_one():
    env = GymnasiumEnv("CartPole-v0", seed=0)
    env.reset()
    for _ in range(200):
        _, rewards, game_over = env.step(int_action(1))  # always push right: the pole falls quickly
        if game_over:
            break
    assert game_over == -1 and rewards["reward"] == [1.0]
    assert env.steps < 50


class _Always(gymnasium.Env):
    """Never terminates: only the time limit ends an episode."""
    observation_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.ones(2, np.float32), 1.0, False, False, {}


def test_time_out_follows_flare_gymenv():
    """FLARE's GymEnv ends an episode by time-out after max_episode_steps - 1 steps, never as a failure."""
    env = GymnasiumEnv("CartPole-v0")
    env.gym_env = OldGymAPI(gymnasium.wrappers.TimeLimit(_Always(), max_episode_steps=50))
    env.gym_env._max_episode_steps = 5  # what a registered spec's max_episode_steps gives
    env.reset()
    steps = 0
    while not env.time_out():
        _, _, game_over = env.step(int_action(0))
        assert game_over == 0
        steps += 1
    assert steps == 4


def test_truncation_is_a_time_out_not_a_failure():
    env = GymnasiumEnv("CartPole-v0")
    inner = OldGymAPI(gymnasium.wrappers.TimeLimit(_Always(), max_episode_steps=3))
    inner._max_episode_steps = 100  # a TimeLimit shorter than the spec: gymnasium truncates first
    env.gym_env = inner
    env.reset()
    for _ in range(2):
        assert env.step(int_action(0))[2] == 0 and not env.time_out()
    assert env.step(int_action(0))[2] == 0
    assert env.time_out()
    env.reset()
    assert not env.time_out()


def test_old_gym_api():
    env = OldGymAPI(gymnasium.make("Acrobot-v1"), seed=5)
    obs = env.reset()
    assert isinstance(obs, np.ndarray) and obs.shape == (6,)
    out = env.step(0)
    assert len(out) == 4
    obs, reward, done, info = out
    assert reward == -1.0 and done is False and info["terminated"] is False and info["truncated"] is False
    assert env._max_episode_steps == 500


def test_lunarlander_v2_maps_to_v3():
    with pytest.warns(UserWarning, match="LunarLander-v3"):
        assert resolve_game("LunarLander-v2") == "LunarLander-v3"
    assert resolve_game("CartPole-v0") == "CartPole-v0"
    env = GymnasiumEnv("LunarLander-v2")
    assert env.game_name == "LunarLander-v3" and env.observation_dims() == {"sensor": (8,)}


def test_reward_scaling():
    f = scale_reward(100)
    assert f(1.0) == pytest.approx(0.01) and f(-100.0) == pytest.approx(-1.0) and f(0) == 0
    g = pickle.loads(pickle.dumps(f))  # unlike FLARE examples' lambda
    assert g(250.0) == pytest.approx(2.5)
    assert RewardScale(1)(3.0) == 3.0
    with pytest.raises(ValueError):
        RewardScale(0)
