"""Flag parsing, the paper's defaults, ticket reward and curves, messages when FLARE is missing (no FLARE needed)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flare_ext.a2c import PAPER_GAME_SETTINGS, env_seed, paper_settings, parse_args, training_settings
from flare_ext.runner import RoundResult, epoch_curve, split_games
from lth_plugins.hparams import Reset, Schedule, Ticket

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("game,hidden,m", [("CartPole-v0", (128,) * 3, 160), ("Acrobot-v1", (256,) * 3, 320),
                                           ("LunarLander-v3", (256,) * 3, 640)])
def test_paper_defaults_per_game(game, hidden, m):
    a = parse_args(["--game", game])
    assert a.hidden == hidden and a.games_per_epoch == m
    assert (a.epochs, a.last_games, a.agents, a.sample_interval) == (20, 100, 32, 4)
    assert a.reward_divisor == 100.0
    assert (a.lr, a.rmsprop_alpha, a.rmsprop_eps) == (1e-4, 0.99, 1e-8)
    assert a.lottery is None and not a.lottery_prune  # plain dense FLARE A2C


def test_lottery_defaults_are_the_papers():
    a = parse_args(["--lottery-prune", "--seed", "3"])
    c = a.lottery
    assert (c.rounds, c.rate, c.pruner) == (20, 0.2, "global_magnitude") and c.schedule is Schedule.ITERATIVE
    assert c.reset is Reset.LATE and c.late_reset == "1ep" and c.ticket is Ticket.WINNING
    assert c.seed == 3  # --lottery-seed follows --seed
    assert a.run_dir == os.path.join("runs", "flare_CartPole-v0_s3_winning")
    c.validate(total_epochs=a.epochs)


def test_every_setting_can_be_overridden():
    a = parse_args(["--game", "Acrobot-v1", "--epochs", "2", "--games-per-epoch", "8", "--last-games", "5",
                    "--agents", "4", "--hidden", "16,8", "--lr", "3e-4", "--rmsprop-alpha", "0.9",
                    "--rmsprop-eps", "1e-5", "--sample-interval", "5", "--reward-divisor", "10",
                    "--discount", "0.95", "--entropy-weight", "0.02", "--value-weight", "0.5", "--grad-clip", "1",
                    "--lottery-prune", "--lottery-rounds", "3", "--lottery-rate", "0.5", "--lottery-reset", "init",
                    "--lottery-late-reset", "10u", "--lottery-seed", "7", "--seed", "1", "--run-dir", "/tmp/x"])
    assert (a.epochs, a.games_per_epoch, a.last_games, a.agents, a.hidden) == (2, 8, 5, 4, (16, 8))
    assert (a.lr, a.rmsprop_alpha, a.rmsprop_eps, a.sample_interval, a.reward_divisor) == (3e-4, 0.9, 1e-5, 5, 10)
    assert (a.discount, a.entropy_weight, a.value_weight, a.grad_clip) == (0.95, 0.02, 0.5, 1.0)
    c = a.lottery
    assert (c.rounds, c.rate, c.late_reset, c.seed) == (3, 0.5, "10u", 7) and c.reset is Reset.INIT
    assert a.run_dir == "/tmp/x"
    s = training_settings(a)
    assert s["hidden"] == [16, 8] and s["game"] == "Acrobot-v1" and s["games_per_epoch"] == 8


def test_stored_settings_are_those_existing_run_directories_hold():
    """A run directory's config.json holds these settings; a resumed run must repeat them exactly."""
    a = parse_args(["--lottery-prune", "--seed", "2", "--run-dir", "/tmp/x", "--torch-threads", "2",
                    "--flare-print-interval", "7"])
    assert training_settings(a) == {
        "agents": 32, "algorithm": "flare.SimpleAC", "discount": 0.99, "entropy_weight": 0.01, "epochs": 20,
        "game": "CartPole-v0", "games_per_epoch": 160, "grad_clip": None, "hidden": [128, 128, 128],
        "last_games": 100, "lr": 1e-4, "reward_divisor": 100.0, "rmsprop_alpha": 0.99, "rmsprop_eps": 1e-8,
        "sample_interval": 4, "seed": 2, "value_weight": 1.0}


def test_random_ticket_flags(capsys):
    a = parse_args(["--lottery-prune", "--lottery-ticket", "random", "--lottery-masks-from", "runs/wt"])
    assert a.lottery.ticket is Ticket.RANDOM and a.lottery.masks_from == os.path.abspath("runs/wt")
    with pytest.raises(SystemExit):  # the flags are refused as they are parsed (lth sweep checks jobs so)
        parse_args(["--lottery-prune", "--lottery-ticket", "random"])
    assert "needs the winning ticket's masks: give masks_from" in capsys.readouterr().err


def test_a_bad_lottery_value_names_its_flag(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--lottery-prune", "--lottery-rate", "1.5"])
    assert capsys.readouterr().err.endswith(
        "error: argument --lottery-rate: prune rate must lie strictly between 0 and 1, got 1.5\n")


def test_late_reset_must_lie_inside_the_round(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--lottery-prune", "--epochs", "1"])
    assert "late reset point 1ep lies beyond the training length of 1 epochs" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["--lottery-rate", "1.5"], "argument --lottery-rate: prune rate must lie strictly between 0 and 1, got 1.5"),
    (["--lottery-ticket", "foo"], "argument --lottery-ticket: invalid choice: 'foo'")])
def test_a_refused_lottery_flag_is_one_line_without_the_usage(capsys, argv, says):
    with pytest.raises(SystemExit) as e:
        parse_args(["--lottery-prune", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_lunarlander_v2_alias(capsys):
    a = parse_args(["--game", "LunarLander-v2"])
    assert a.game == "LunarLander-v3" and a.games_per_epoch == 640 and a.hidden == (256,) * 3
    assert "LunarLander-v3" in capsys.readouterr().err
    assert "LunarLander-v2" not in PAPER_GAME_SETTINGS and paper_settings("LunarLander-v2")["games_per_epoch"] == 640


@pytest.mark.parametrize("argv", [["--hidden", "12,x"], ["--hidden", "0"], ["--agents", "0"],
                                  ["--epochs", "1", "--games-per-epoch", "4", "--agents", "8"],
                                  ["--sample-interval", "1"], ["--game", "Pong-v5"],
                                  ["--epoch", "3"]])  # an abbreviation of --epochs is a misspelling, refused
def test_bad_flags_exit_with_usage(argv):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2


def test_help_mentions_lunarlander_v3_and_the_flare_build():
    out = subprocess.run([sys.executable, "-m", "flare_ext.a2c", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "LunarLander-v2 no longer exists in gymnasium 1.x" in " ".join(out.split())
    assert "lth deps build flare" in out and "--lottery-prune" in out and "--games-per-epoch" in out


def test_ticket_reward_is_mean_of_last_l_games():
    def ticket(rewards, last_games):
        return RoundResult(rewards=[float(r) for r in rewards]).ticket(last_games)

    rewards = list(range(1, 301))  # unscaled episodic rewards in completion order
    full = ticket(rewards, 100)
    assert full.value == pytest.approx(sum(range(201, 301)) / 100)
    assert full.metrics() == {"ticket_reward": full.value, "ticket_games": 100, "last_games": 100}
    few = ticket([10.0, 20.0], 100)  # fewer games than L: all of them, marked
    assert few.value == 15.0 and few.metrics()["ticket_games"] == 2 and "ticket_reward_partial" in few.metrics()
    assert ticket([5.0], 1).value == 5.0
    assert ticket([], 100).value is None  # no game finished: no value
    with pytest.raises(ValueError):
        ticket([1.0], 0)


def test_env_seeds_differ_per_round_and_run_and_stay_31_bit():
    seeds = {env_seed(s, k) for s in range(20) for k in range(21)}
    assert len(seeds) == 20 * 21
    assert all(s % 1024 == 0 and 0 <= s + 1023 < 2**31 for s in seeds)  # agent i's env: s + i


def test_epoch_curve():
    rewards = [1.0, 3.0, 5.0, 7.0, 9.0]
    curve = epoch_curve(rewards, [10] * 5, [0, 1, 2, 3, 4], games_per_epoch=2)
    assert [c["epoch"] for c in curve] == [1, 2, 3]
    assert [c["mean_reward"] for c in curve] == [2.0, 6.0, 9.0]
    assert [c["games"] for c in curve] == [2, 4, 5] and [c["updates"] for c in curve] == [1, 3, 4]
    assert curve[1]["episode_rewards"] == [5.0, 7.0] and curve[0]["steps"] == 20
    # a round continuing the dense schedule after 3 games (a late reset): epochs keep the dense round's numbers
    later = epoch_curve([4.0, 6.0, 8.0], [11, 12, 13], [5, 6, 7], games_per_epoch=2, first_game=3)
    assert [(c["epoch"], c["games"], c["steps"], c["episode_rewards"]) for c in later] == \
        [(2, 4, 11, [4.0]), (3, 6, 25, [6.0, 8.0])]


def test_split_games():
    assert split_games(3200, 32) == [100] * 32
    assert split_games(10, 4) == [3, 3, 2, 2] and sum(split_games(641, 32)) == 641
    with pytest.raises(ValueError):
        split_games(3, 4)


# Runs flare_ext.a2c as if no flare-rl were installed: `flare` is looked up only outside site-packages.
WITHOUT_FLARE_RL = """
import importlib.machinery, sys
class NoInstalledFlare:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "flare":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if "-packages" not in p])
        if spec is None:
            raise ModuleNotFoundError("No module named 'flare'", name="flare")
        return spec
sys.meta_path.insert(0, NoInstalledFlare)
from flare_ext.a2c import main
sys.exit(main(["--epochs", "1"]))
"""


def _without_flare_rl(cwd, **env):
    return subprocess.run([sys.executable, "-c", WITHOUT_FLARE_RL], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **env), timeout=120)


def test_missing_flare_rl_exits_2_with_build_instructions(tmp_path):
    p = _without_flare_rl(tmp_path)
    assert p.returncode == 2, p.stderr
    assert "FLARE is not importable: no module named 'flare' ('flare-rl' is not installed" in p.stderr
    assert "lth deps build flare --source /path/to/flare" in p.stderr and "Traceback" not in p.stderr
    p = _without_flare_rl(tmp_path, FLARE_ROOT="/my/flare")  # an old setting points at the user's checkout
    assert p.returncode == 2 and "FLARE_ROOT is no longer read" in p.stderr
    assert "lth deps build flare --source /my/flare" in p.stderr


def test_a_clone_in_the_working_directory_is_named_with_the_right_cause(tmp_path):
    (tmp_path / "flare" / "flare" / "framework").mkdir(parents=True)  # `git clone .../flare` here
    (tmp_path / "flare" / "flare" / "__init__.py").write_text("")
    p = _without_flare_rl(tmp_path)
    assert p.returncode == 2, p.stderr
    msg = " ".join(p.stderr.split())
    assert f"'flare-rl' is not installed in {sys.prefix}; 'import flare' found only the folder " \
           f"{tmp_path / 'flare'}, a FLARE checkout" in msg
    assert f"lth deps build flare --source {tmp_path / 'flare'}" in msg and "does not look like" not in msg
    (tmp_path / "other" / "flare").mkdir(parents=True)  # a folder named flare that is no checkout
    p = _without_flare_rl(tmp_path / "other")
    assert p.returncode == 2 and "which has no __init__.py and is not FLARE" in p.stderr


def test_importing_the_package_imports_neither_flare_nor_gymnasium():
    code = "import sys, flare_ext; print('flare' in sys.modules, 'gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
