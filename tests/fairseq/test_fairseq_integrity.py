"""fairseq run integrity (issue 8): the late-reset point against every length before training, the whole
configuration stored, a random ticket checked against its winning run, nothing written by a refused start."""
import json

from .conftest import GEN_ARGS, WT_ARGS
from .helpers import MT_MODEL, fairseq_train


def _files(path):
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name != ".lock"}


def _refused(proc, *needles):
    assert proc.returncode != 0
    for n in needles:
        assert n in proc.stdout, (n, proc.stdout[-3000:])
    assert "Traceback" not in proc.stdout
    assert "Start iterating over samples" not in proc.stdout  # no training happened


def test_late_reset_in_epochs_is_checked_against_max_update_before_training(mt_data, tmp_path):
    save = tmp_path / "wt"
    proc = fairseq_train(mt_data, save, *MT_MODEL, "--max-update", "30", "--lottery-prune",
                         "--lottery-late-reset", "500ep", check=False)
    _refused(proc, "late reset point 500ep", "beyond the training length of 30 updates", "updates per epoch")
    assert not save.exists()
    proc = fairseq_train(mt_data, save, *MT_MODEL, "--max-epoch", "2", "--lottery-prune",
                         "--lottery-late-reset", "5000u", check=False)
    _refused(proc, "late reset point 5000u", "beyond the training length of 2 epochs")
    assert not save.exists()


def test_extending_a_run_under_other_settings_is_refused(mt_winning, mt_data):
    wt, _ = mt_winning
    before = _files(wt)
    stored = json.loads((wt / "config.json").read_text())["settings"]
    assert stored["warmup_updates"] == 30 and stored["label_smoothing"] == 0.1 and "clip_norm" in stored
    assert "save_dir" not in stored and "log_interval" not in stored  # cannot change results
    args = [a for a in WT_ARGS if a != "3" and a != GEN_ARGS]
    i = args.index("--lottery-rounds")
    args[i:i + 1] = ["--lottery-rounds", "4"]
    proc = fairseq_train(mt_data, wt, *MT_MODEL, *args, "--warmup-updates", "60", "--label-smoothing", "0.3",
                         "--clip-norm", "0.1", "--lottery-generate-args=--beam 3", check=False)
    _refused(proc, "settings.warmup_updates", "settings.label_smoothing", "settings.clip_norm")
    assert "generate_args" not in proc.stdout  # how rounds are scored is no reason to refuse a rerun
    assert _files(wt) == before


def test_random_ticket_is_checked_against_its_winning_run_before_anything_is_written(mt_winning, mt_data,
                                                                                     tmp_path):
    wt, _ = mt_winning
    rt = tmp_path / "rt"
    rt_flags = ["--lottery-prune", "--lottery-ticket", "random", "--lottery-masks-from", str(wt),
                "--lottery-eval-bleu", GEN_ARGS]
    other_lr = [a if a != "0.005" else "0.001" for a in MT_MODEL]
    proc = fairseq_train(mt_data, rt, *other_lr, "--max-update", "40", "--lottery-rounds", "2", *rt_flags,
                         check=False)
    _refused(proc, "settings.lr")
    proc = fairseq_train(mt_data, rt, *MT_MODEL, "--max-update", "40", "--lottery-rounds", "5", *rt_flags,
                         check=False)
    _refused(proc, "asks for 5 rounds", "has masks for 4")
    wider = [a if a != "64" else "96" for a in MT_MODEL]  # another network: other shapes
    proc = fairseq_train(mt_data, rt, *wider, "--max-update", "40", "--lottery-rounds", "1", *rt_flags,
                         check=False)
    _refused(proc)
    assert not rt.exists() or not any(rt.rglob("config.json"))
    # the corrected command runs
    fairseq_train(mt_data, rt, *MT_MODEL, "--max-update", "40", "--lottery-rounds", "1", *rt_flags)
    assert (rt / "round_01" / "metrics.json").is_file()


def test_demo_table_shows_no_random_ticket_round_0(tmp_path):
    from fairseq_ext.demo import table

    from lth_plugins.record import RoundRecord

    for ticket, rounds in (("wt", (0, 1)), ("rt", (1,))):
        for k in rounds:
            d = tmp_path / ticket / f"round_{k:02d}"
            d.mkdir(parents=True)
            record = RoundRecord(round=k, ticket=ticket, fraction_pruned=0.4 * k, surviving=10, selected=10,
                                 primary="bleu", higher_is_better=True, updates=40, metrics={
                                     "valid_loss": 1.0 + k, "bleu": 10.0 + k,
                                     "generate_command": "fairseq-generate DATA"})
            (d / "metrics.json").write_text(json.dumps(record.to_json()))
    lines = table(tmp_path / "wt", tmp_path / "rt").splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("round"))
    assert lines[header + 1].split() == ["0", "0.0%", "40", "|", "10.00", "-", "|", "1.000", "-"]
    assert lines[header + 2].split() == ["1", "40.0%", "40", "|", "11.00", "11.00", "|", "2.000", "2.000"]
