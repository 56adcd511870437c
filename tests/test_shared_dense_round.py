"""Ablations of one seed reuse one dense round 0 (`dense_from`): the same results as training it again, refused
when anything that shapes round 0 differs."""

import pytest

from lth_plugins import LotteryConfig, RunStore
from lth_plugins.demo import run_ticket
from lth_plugins.errors import LotteryConfigError

from .waiting import start_thread, wait_for_stderr

KW = dict(seed=0, epochs=3, n_train=512)


def records(run_dir):
    store = RunStore(run_dir)
    return {k: store.read_round(k) for k in store.finished_rounds()}


@pytest.mark.parametrize("ablation", [dict(schedule="oneshot"), dict(reset="init"), dict(rate=0.5)])
def test_an_ablation_reusing_the_dense_round_ends_as_one_that_trained_it(tmp_path, ablation):
    wt = run_ticket(LotteryConfig(rounds=2, late_reset="1ep"), tmp_path / "wt", **KW)
    own = run_ticket(LotteryConfig(rounds=2, late_reset="1ep", **ablation), tmp_path / "own", **KW)
    shared = run_ticket(LotteryConfig(rounds=2, late_reset="1ep", dense_from=str(wt), **ablation),
                        tmp_path / "shared", **KW)
    mine, theirs = records(shared), records(own)
    assert mine[0].dense_from == str(wt) and mine[0].finished_at == records(wt)[0].finished_at
    for k in (0, 1, 2):  # the demo trains deterministically: reusing round 0 changes nothing downstream
        assert mine[k].metrics == theirs[k].metrics, k
        assert mine[k].surviving == theirs[k].surviving
    for k in (1, 2):
        assert RunStore(shared).load_mask(k).checksum() == RunStore(own).load_mask(k).checksum()


def test_reusing_a_dense_round_of_other_settings_is_refused_before_anything_is_written(tmp_path):
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep"), tmp_path / "wt", **KW)
    with pytest.raises(LotteryConfigError, match=r"other settings.*settings.epochs: there 3 vs here 4"):
        run_ticket(LotteryConfig(rounds=1, late_reset="1ep", dense_from=str(wt)), tmp_path / "a",
                   **dict(KW, epochs=4))
    with pytest.raises(LotteryConfigError, match=r"late snapshot at 2ep, but dense_from .* took it at 1ep"):
        run_ticket(LotteryConfig(rounds=1, late_reset="2ep", dense_from=str(wt)), tmp_path / "b", **KW)
    init = run_ticket(LotteryConfig(rounds=1, reset="init"), tmp_path / "init", **KW)
    with pytest.raises(LotteryConfigError, match=r"takes none \(it resets to init\)"):
        run_ticket(LotteryConfig(rounds=1, late_reset="1ep", dense_from=str(init)), tmp_path / "c", **KW)
    with pytest.raises(LotteryConfigError, match="only used by winning tickets"):
        LotteryConfig(ticket="random", masks_from=str(wt), dense_from=str(wt)).validate()
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))


def test_a_dense_source_that_is_not_running_and_not_done_fails_at_once(tmp_path, monkeypatch):
    from lth_plugins import wait

    monkeypatch.setattr(wait, "WRITER_START_S", 1.0)
    monkeypatch.setattr(wait, "ALIVE_CHECK_S", 0.2)
    wt = run_ticket(LotteryConfig(rounds=1, late_reset="1ep"), tmp_path / "wt", **KW)
    RunStore(wt).metrics_path(0).rename(tmp_path / "m0")  # as if its round 0 had been killed
    with pytest.raises(Exception, match=r"the dense round 0 of .* does not exist and the run .* is not running"):
        run_ticket(LotteryConfig(rounds=1, late_reset="1ep", dense_from=str(wt), mask_wait=3600),
                   tmp_path / "x", **KW)


def test_an_ablation_started_beside_its_dense_run_waits_for_it_to_start(tmp_path, capsys):
    wt_dir, errors = tmp_path / "wt", []
    wt_dir.mkdir()  # as a launcher does; the ablation starts before the dense run wrote anything
    thread = start_thread(errors, run_ticket, LotteryConfig(rounds=1, late_reset="1ep", schedule="oneshot",
                                                            dense_from=str(wt_dir), mask_wait=300),
                          tmp_path / "oneshot", **KW)
    waiting = f"waiting up to 300 s for the dense run {wt_dir} to write its config.json"
    err = wait_for_stderr(capsys, waiting, thread)  # the dense run starts only then
    assert waiting in err, (err, errors)
    run_ticket(LotteryConfig(rounds=1, late_reset="1ep"), wt_dir, **KW)
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    assert records(tmp_path / "oneshot")[0].dense_from == str(wt_dir)
