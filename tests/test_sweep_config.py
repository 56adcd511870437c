"""The sweep's config as dataclasses (a bad key named, the core's defaults and rules imported, every shipped config
loading) and its policy (what to submit, stop or leave) on made-up states: no job runs here."""
import importlib.util
import json
from pathlib import Path

import pytest

from lth_plugins import cli
from lth_plugins.errors import SweepError
from lth_plugins.hparams import LotteryConfig, flag
from lth_plugins.sweep.config import GRID_FLAGS, MUTABLE_FLAGS, Grid, Job, load_config, read_file
from lth_plugins.sweep.policy import Policy
from lth_plugins.sweep.targets import TorchTarget
from lth_plugins.sweep.vocabulary import Executor, JobState

from . import sweep_helpers

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(REPO.glob("examples/**/*.toml"))
# what each framework's experiments need installed to expand into jobs
NEEDS = {"flare": ("flare",), "fairseq": ("fairseq",), "elf": ("rlpytorch", "atari_game"), "torch": ()}


def write_config(path: Path, **over) -> Path:
    cfg = {"seeds": [0], "experiment": [{"framework": "torch", "args": ["--epochs", "1"]}]}
    cfg.update(over)
    return sweep_helpers.write_config(path, cfg)


def test_the_examples_ship_configs():
    assert {p.name for p in SHIPPED} >= {"sweep_flare_fig1.toml", "figure2.toml", "figure4_ablations.toml",
                                       "sweep_transformer_small.toml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_config_loads(path, tmp_path, monkeypatch, capsys):
    grid = Grid.from_table(read_file(path), path)
    assert grid.experiment and grid.seeds
    missing = [m for e in grid.experiment for m in NEEDS[e.framework] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"its jobs need {', '.join(missing)} installed to expand")
    # a fairseq experiment's data folder is relative to where lth sweep runs: a small corpus stands in for it (the
    # dry run checks each job with fairseq-train's own parser and the lottery's checks, the data folder's among them)
    monkeypatch.chdir(tmp_path)
    for e in grid.experiment:
        if "data" in e.own:
            from fairseq_ext.data import make_translation_data

            built = make_translation_data(tmp_path / "corpus", seed=0, n_train=200, n_valid=20, n_test=20)
            (tmp_path / e.own["data"]).parent.mkdir(parents=True)
            built.rename(tmp_path / e.own["data"])
    cfg = load_config(path, tmp_path / "sweep")
    assert len(cfg.jobs) == len(grid.seeds) * len(grid.tickets) * len(grid.ablations) * len({j.task for j in cfg.jobs})
    # and `lth sweep --dry-run` previews it on this machine, one without GPUs (the ELF configs ask one per job)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert cli.main(["sweep", "--dry-run", str(path), str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{len(cfg.jobs)} jobs = ")
    gpus = any((e.executor_params or {}).get("gpus_per_node") for e in grid.experiment) or \
        (grid.executor_params or {}).get("gpus_per_node")
    assert ("this machine cannot run it" in out) == bool(gpus and grid.executor == "local"), out
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("over, message", [
    ({"wait_timeout": 60}, "unknown setting(s) wait_timeout; known: ablations, dense_from, executor, "
                           "executor_params, experiment, lottery, max_idle_s, max_parallel, retries, rounds, seeds, "
                           "share_dense, tickets, wait_timeout_s"),
    ({"max_idle_s": 0}, "max_idle_s must be a positive number of seconds, got 0"),
    ({"share_dense": "no"}, "share_dense must be true or false, got 'no'"),
    ({"dense_from": ["runs/a"]}, "dense_from must be the path of another sweep directory, got ['runs/a']"),
    ({"ablations": {"mine": ["--lottery-dense-from", "/x"]}}, "ablation 'mine' sets --lottery-dense-from, which the "
                                                              "sweep sets for every job"),
    ({"tickets": ["winning", "transferred"]}, "tickets must be a non-empty list of winning, random, shuffled"),
    ({"retries": -1}, "retries must be an integer >= 0 (requeues after a crashed rank or a lost node), got -1"),
    ({"experiment": [{"framework": "torch", "data": "x"}]},
     "experiment 1 (torch): unknown key(s) data; known: args, executor_params, framework, name, tasks"),
    ({"wait_timeout_s": 0}, "wait_timeout_s must be a positive number, got 0"),
    ({"lottery": ["--lottery_seed", "3"]}, "lottery sets --lottery_seed, which the sweep sets for every job"),
    ({"ablations": {"a": ["--run-dir", "x"]}},
     "ablation 'a' (for experiment 1 (torch)) sets --run-dir, which the sweep sets for every job"),
    ({"experiment": [{"framework": "torch", "args": ["--seed=3"]}]},
     "args of experiment 1 sets --seed, which the sweep sets for every job"),
])
def test_a_bad_setting_is_named(tmp_path, over, message):
    with pytest.raises(SweepError) as e:
        load_config(write_config(tmp_path / "s.json", **over), tmp_path / "sw")
    assert message in str(e.value)


def test_defaults_and_rules_are_the_cores_and_the_targets(tmp_path):
    grid = Grid(experiment=[])
    assert grid.wait_timeout_s == LotteryConfig().mask_wait
    assert grid.executor is Executor.LOCAL and [str(t) for t in grid.tickets] == ["winning", "random"]
    # the lottery flags of store.MUTABLE_KEYS (a target adds its scoring_flags)
    assert MUTABLE_FLAGS == ("--lottery-rounds", "--lottery-mask-wait")
    # the core reserves only the lottery flags it sets; a framework's own flags are its target's
    assert all(f.startswith("--lottery-") for f in GRID_FLAGS) and "--run-dir" in TorchTarget.reserved_flags
    cfg = load_config(write_config(tmp_path / "s.json"), tmp_path / "sw")
    rt = cfg.job("teacher-mlp/default/s0/rt")
    assert rt.argv[rt.argv.index("--lottery-mask-wait") + 1] == f"{LotteryConfig().mask_wait:g}"
    assert rt.argv[:3] == TorchTarget().program()
    # a job's identity leaves out what may change, in either spelling
    grown = Job(**{**rt.__dict__, "argv": [a.replace("--lottery-mask-wait", "--lottery_mask_wait") for a in rt.argv]
                   + ["--lottery-rounds=9"]})
    assert grown.identity() == rt.identity() and "--lottery-mask-wait" not in " ".join(rt.identity())


def test_the_grid_recorded_reads_back(tmp_path):
    cfg = load_config(write_config(tmp_path / "s.json", rounds=3, ablations={"default": [], "o": [
        "--lottery-schedule", "oneshot"]}, executor_params={"timeout_min": 5}), tmp_path / "sw")
    recorded = json.loads(json.dumps(cfg.grid.to_dict()))
    assert Grid.from_table(recorded, "sweep.json") == cfg.grid


# --- the policy -------------------------------------------------------------------------------------------------
def NO_DENSE_ROUND(run_dir):
    return False


def _jobs(n_seeds=1):
    jobs = []
    for s in range(n_seeds):
        wt = Job(f"t/d/s{s}/wt", "torch", "t", "d", s, "winning", Path(f"/runs/s{s}/wt"), [])
        rt = Job(f"t/d/s{s}/rt", "torch", "t", "d", s, "random", Path(f"/runs/s{s}/rt"), [], winning=wt.name)
        jobs += [wt, rt]
    return jobs


def _states(jobs, **given):
    return {j.name: {"state": given.get(j.name.replace("/", "_"), (JobState.PENDING, 0))[0],
                     "done": given.get(j.name.replace("/", "_"), (JobState.PENDING, 0))[1]} for j in jobs}


def test_a_random_ticket_follows_its_winning_tickets_first_mask():
    jobs = _jobs()
    masks = set()
    policy = Policy(jobs, None, lambda run_dir, k: (str(run_dir), k) in masks, NO_DENSE_ROUND)
    states = _states(jobs)
    assert [j.name for j in policy.to_submit(states, set())] == ["t/d/s0/wt"]
    states = _states(jobs, t_d_s0_wt=(JobState.RUNNING, 0))
    assert policy.to_submit(states, {"t/d/s0/wt"}) == []
    masks.add(("/runs/s0/wt", 1))
    assert [j.name for j in policy.to_submit(states, {"t/d/s0/wt"})] == ["t/d/s0/rt"]


def test_slots_and_no_second_submission_in_one_invocation():
    jobs = _jobs(n_seeds=3)
    policy = Policy(jobs, 2, lambda run_dir, k: False, NO_DENSE_ROUND)
    states = _states(jobs, t_d_s0_wt=(JobState.RUNNING, 0), t_d_s1_wt=(JobState.FAILED, 0))
    assert policy.free_slots(states) == 1
    assert [j.name for j in policy.to_submit(states, {"t/d/s0/wt", "t/d/s1/wt"})] == ["t/d/s2/wt"]
    # a failed job of an earlier invocation is submitted again
    assert "t/d/s1/wt" in [j.name for j in policy.to_submit(states, set())]


def test_a_random_ticket_of_a_failed_winning_ticket_is_stopped_when_it_needs_a_missing_mask():
    jobs = _jobs()
    masks = {("/runs/s0/wt", 1)}
    policy = Policy(jobs, None, lambda run_dir, k: (str(run_dir), k) in masks, NO_DENSE_ROUND)
    training = _states(jobs, t_d_s0_wt=(JobState.FAILED, 1), t_d_s0_rt=(JobState.RUNNING, 0))
    assert policy.to_stop(training, {"t/d/s0/wt"}) == []  # round 1: its mask is there
    waiting = _states(jobs, t_d_s0_wt=(JobState.FAILED, 1), t_d_s0_rt=(JobState.RUNNING, 1))
    assert policy.to_stop(waiting, set()) == []  # failed in an earlier invocation: rerun, not stopped
    [(job, why)] = policy.to_stop(waiting, {"t/d/s0/wt"})
    assert job.name == "t/d/s0/rt" and why == "its winning ticket t/d/s0/wt failed before the mask of round 2"
    failed, rest = policy.not_done(_states(jobs, t_d_s0_wt=(JobState.FAILED, 1)), {"t/d/s0/wt"})
    assert failed == ["t/d/s0/wt"] and rest == [("t/d/s0/rt", "its winning ticket t/d/s0/wt failed")]
