"""`lth sweep` of tiny fairseq translation runs (2 seeds x WT/RT x 2 rounds) on submitit's local executor: killed in
the middle, resumed by the same command; a config naming an unknown fairseq task is refused; a started job may change
how its rounds are scored (unless its random ticket has rounds left to train), never what it trains."""
import pytest

from ..sweep_helpers import (failed_job_logs, finished_rounds, lth, run_and_kill, submitted_while_winning_trains,
                             write_config)
from .helpers import COMMON, MT_MODEL

pytest.importorskip("submitit")

ARGS = [a for a in COMMON if a not in ("--seed", "1")] + MT_MODEL + [
    "--max-update", "12", "--lottery-late-reset", "4u"]


def test_fairseq_sweep_killed_and_resumed(mt_data, tmp_path):
    cfg = write_config(tmp_path / "sweep.json", {
        "seeds": [0, 1], "rounds": 2, "max_parallel": 4,
        "experiment": [{"framework": "fairseq", "name": "mt", "data": str(mt_data), "args": ARGS}]})
    sweep = tmp_path / "sw"
    base = sweep / "runs/mt/default"
    pairs = [(base / f"s{s}/wt", base / f"s{s}/rt") for s in (0, 1)]
    run_and_kill(cfg, sweep, pairs, lambda: any((wt / "round_01/metrics.json").is_file() for wt, _ in pairs),
                 tmp_path / "first.log", timeout=900)
    log = (sweep / "sweep.log").read_text()  # whichever seed's winning ticket got ahead: its RT is pipelined
    assert any(submitted_while_winning_trains(log, f"mt/default/s{s}/wt", f"mt/default/s{s}/rt") for s in (0, 1)), log
    before = finished_rounds(sweep)
    again = lth("sweep", cfg, sweep, "--poll", "0.3", timeout=1200)
    assert again.returncode == 0, again.stdout[-4000:] + failed_job_logs(sweep)
    for p, mtime in before.items():
        assert p.stat().st_mtime_ns == mtime, p
    status = lth("status", sweep).stdout
    assert "4 jobs: 4 done" in status, status
    report = lth("report", sweep, "-o", tmp_path / "report")
    assert report.returncode == 0, report.stdout


def test_unknown_fairseq_task_is_refused(mt_data, tmp_path):
    cfg = write_config(tmp_path / "sweep.json", {"experiment": [
        {"framework": "fairseq", "data": str(mt_data), "args": ["--task", "translationn"]}]})
    proc = lth("sweep", cfg, tmp_path / "sw")
    assert proc.returncode == 2 and "unknown fairseq task 'translationn'" in proc.stdout, proc.stdout
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("flag", ["--lottery-run-dir", "--save-dir", "--seed"])
def test_flags_the_grid_sets_are_refused_in_args(mt_data, tmp_path, flag):
    """A run directory in args would put every job's run store in one place; a seed, every seed's init in one."""
    cfg = write_config(tmp_path / "sweep.json", {"experiment": [
        {"framework": "fairseq", "data": str(mt_data), "args": [*ARGS, flag, "x"]}]})
    proc = lth("sweep", "--dry-run", cfg, tmp_path / "sw")
    assert proc.returncode == 2 and f"args of experiment 1 sets {flag}, which the sweep sets" in proc.stdout, \
        proc.stdout[-2000:]
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("ablation, says", [
    (["--lottery-rate", "1.5"], "prune rate must lie strictly between 0 and 1, got 1.5"),
    (["--max-updat", "10"], "unrecognized arguments: --max-updat 10"),  # abbreviations refused, as fairseq-train does
])
def test_a_dry_run_refuses_a_bad_flag_in_one_job_naming_the_job(mt_data, tmp_path, ablation, says):
    cfg = write_config(tmp_path / "sweep.json", {
        "seeds": [0], "rounds": 2, "ablations": {"default": [], "bad": ablation},
        "experiment": [{"framework": "fairseq", "name": "mt", "data": str(mt_data), "args": ARGS}]})
    proc = lth("sweep", "--dry-run", cfg, tmp_path / "sw")
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "job mt/bad/s0/wt: fairseq-train refuses its arguments" in proc.stdout and says in proc.stdout, proc.stdout
    assert not (tmp_path / "sw").exists()


def test_a_started_job_may_change_how_its_rounds_are_scored_but_not_what_it_trains(mt_data, tmp_path):
    from lth_plugins.errors import SweepError
    from lth_plugins.sweep.config import load_config
    from lth_plugins.sweep.state import SweepDir

    sweep = SweepDir(tmp_path / "sw")

    def config(*extra, tickets=("winning",)):
        """The sweep's jobs, one seed's tickets scored by BLEU, with `extra` arguments."""
        args = [*ARGS, "--lottery-eval-bleu", *extra]
        path = write_config(tmp_path / "sweep.json", {"seeds": [0], "rounds": 2, "tickets": list(tickets),
                                                      "experiment": [{"framework": "fairseq", "name": "mt",
                                                                      "data": str(mt_data), "args": args}]})
        return load_config(path, sweep.path)

    sweep.open(config("--lottery-generate-args", "--beam 2"))
    sweep.close()
    round0 = sweep.path / "runs/mt/default/s0/wt/round_00"
    round0.mkdir(parents=True)
    (round0 / "metrics.json").write_text("{}")  # the job has a result: what it trains may no longer change
    sweep.plan(config("--lottery-generate-args=--beam 5"))  # how it is scored may, as its run directory allows
    with pytest.raises(SweepError, match=r"mt/default/s0/wt would change: \(nothing\) -> --clip-norm 0.25"):
        sweep.plan(config("--clip-norm", "0.25", "--lottery-generate-args", "--beam 2"))

    # its random ticket, with rounds to train, would be scored otherwise than the started winning ticket: refused
    # at once, started (it may be submitted again) or not; once it has every round, the flags may change
    sweep.plan(config("--lottery-generate-args", "--beam 2", tickets=("winning", "random")))
    rt = sweep.path / "runs/mt/default/s0/rt"
    for k in (None, 1, 2):
        if k is not None:
            (rt / f"round_{k:02d}").mkdir(parents=True)
            (rt / f"round_{k:02d}" / "metrics.json").write_text("{}")
        if k == 2:
            sweep.plan(config("--lottery-generate-args", "--beam 5", tickets=("winning", "random")))
            continue
        with pytest.raises(SweepError, match=r"mt/default/s0/rt would be scored with --beam 2 -> --beam 5, but its "
                                             r"winning ticket mt/default/s0/wt has started with the old flags"):
            sweep.plan(config("--lottery-generate-args", "--beam 5", tickets=("winning", "random")))
