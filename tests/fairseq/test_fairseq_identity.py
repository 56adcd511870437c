"""What identifies a fairseq run: the lottery seed follows --seed unless given, the data is known by its content
wherever it lies, runs stored by earlier versions still resume, and bad input is named before anything is built."""
import shutil
import subprocess

import pytest

from fairseq_ext import train_command
from lth_plugins import cli
from lth_plugins.errors import REFUSED, RunStoreError
from lth_plugins.store import RunStore

from .helpers import COMMON, MT_MODEL, USER_DIR, env, fairseq_train

SHORT = [*MT_MODEL, "--max-update", "10", "--lottery-prune", "--lottery-reset", "init"]


def spec_of(data, save_dir, *args):
    """The run spec fairseq-train builds from this command line (parsed by fairseq's own parser)."""
    from fairseq import options

    import fairseq_ext
    from fairseq_ext.options import build_spec

    fairseq_ext.install()
    ns = options.parse_args_and_arch(options.get_training_parser(),
                                     [str(data), "--save-dir", str(save_dir), *COMMON, *MT_MODEL,
                                      "--max-update", "10", *args])
    return build_spec(ns)


def stored_config(spec) -> dict:
    """The config.json the round loop writes for `spec`."""
    from fairseq_ext.spec import SCORING_SETTINGS
    from lth_plugins.run import run_config

    return run_config(spec.config, task=spec.task, framework="fairseq", settings=spec.settings, label=spec.label,
                      scoring=SCORING_SETTINGS)


def test_three_seeds_without_a_lottery_seed_draw_three_lottery_seeds(mt_data, tmp_path):
    seeds = [spec_of(mt_data, tmp_path / f"s{s}", "--seed", str(s)).config.seed for s in (1, 2, 3)]
    assert seeds == [1, 2, 3]
    assert spec_of(mt_data, tmp_path / "given", "--seed", "2", "--lottery-seed", "7").config.seed == 7


def test_random_tickets_run_by_hand_with_three_seeds_are_three_seeds_of_the_report(mt_data, tmp_path):
    from lth_plugins.report import build_report

    wt = tmp_path / "wt"
    fairseq_train(mt_data, wt, *SHORT, "--lottery-rounds", "1")
    rts = [tmp_path / f"rt_s{s}" for s in (1, 2, 3)]
    for s, rt in zip((1, 2, 3), rts):
        fairseq_train(mt_data, rt, *SHORT, "--lottery-rounds", "1", "--seed", str(s), "--lottery-ticket", "random",
                      "--lottery-masks-from", str(wt))
    assert [RunStore(rt).lottery.seed for rt in rts] == [1, 2, 3]
    report = build_report([wt, *rts], tmp_path / "report")
    random = [s for s in report.tasks[0][1][0].series() if s.ticket == "random"]
    assert [s.n for s in random] == [[3]]
    # no -s/-t: the pair is read from the data's file names, as fairseq reads it
    assert RunStore.view(wt).config["label"] == "translation src-tgt" and report.tasks[0][0].task == "translation src-tgt"


def test_a_run_stored_under_the_old_defaults_resumes_with_its_command(mt_data, tmp_path):
    """Before: --lottery-seed was 0 whatever --seed was, and the data folder's path identified the run."""
    run = tmp_path / "old"
    old = stored_config(spec_of(mt_data, run, "--seed", "1", "--lottery-seed", "0"))
    old["settings"]["data"] = str(mt_data)
    with RunStore(run, old) as store:
        store.save_snapshot("init", {})  # a run with results: a differing configuration is refused
    spec = spec_of(mt_data, run, "--seed", "1")  # the command that made it
    assert spec.config.seed == 0 and spec.settings["data"] == str(mt_data)
    RunStore(run, stored_config(spec)).close()
    with pytest.raises(RunStoreError, match="lottery.seed: stored 0 vs now 1"):
        RunStore(run, stored_config(spec_of(mt_data, run, "--seed", "1", "--lottery-seed", "1")))
    fresh = spec_of(mt_data, tmp_path / "new", "--seed", "1")
    assert fresh.config.seed == 1 and fresh.settings["data"]["dict.src.txt"].startswith("sha256:")


def test_a_run_resumes_from_a_moved_copy_of_its_data_and_refuses_other_data(mt_data, tmp_path):
    from fairseq_ext.data import make_translation_data

    first, moved = tmp_path / "first" / "bin", tmp_path / "moved" / "bin"
    shutil.copytree(mt_data, first)
    save = tmp_path / "run"
    fairseq_train(first, save, *SHORT, "--lottery-rounds", "1")
    round0 = (save / "round_00" / "metrics.json").read_text()
    first.parent.rename(moved.parent)  # staged elsewhere, e.g. onto another node's local disk
    proc = fairseq_train(moved, save, *SHORT, "--lottery-rounds", "2")
    assert (save / "round_02" / "metrics.json").is_file(), proc.stdout[-3000:]
    assert (save / "round_00" / "metrics.json").read_text() == round0  # resumed, not trained again
    assert str(first) not in (save / "config.json").read_text()  # the data is stored as its content

    other = make_translation_data(tmp_path / "other", seed=1, n_train=300, n_valid=50, n_test=50)
    proc = fairseq_train(other, save, *SHORT, "--lottery-rounds", "2", check=False)
    # said once; exit code 2, a refusal, which a SLURM job's retry budget does not retry as a crash
    assert proc.returncode == REFUSED and proc.stdout.count("holds a different configuration") == 1
    assert "the data differs (in dict.src.txt, dict.tgt.txt" in proc.stdout, proc.stdout[-3000:]
    assert f"data folder: stored {moved}, now {other}" in proc.stdout and "sha256" not in proc.stdout
    assert "Traceback" not in proc.stdout


def test_a_missing_data_folder_is_named_before_anything_runs(tmp_path):
    missing, save = tmp_path / "data-bin", tmp_path / "run"
    proc = subprocess.run(train_command(missing, "--save-dir", save, *COMMON, *SHORT, "--lottery-eval-bleu",
                                        "--user-dir", USER_DIR),
                          env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"fairseq-train: error: the data folder {missing} does not exist" in proc.stdout, proc.stdout[-2000:]
    assert "split" not in proc.stdout and not save.exists()


def test_a_language_the_data_folder_has_no_dictionary_for_is_named_before_anything_runs(mt_data, tmp_path):
    save = tmp_path / "run"
    proc = fairseq_train(mt_data, save, *SHORT, "--source-lang", "src", "--target-lang", "fr", check=False)
    assert proc.returncode == REFUSED and "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert (f"the data folder {mt_data} has no dict.fr.txt for --target-lang fr (it holds dict.src.txt, "
            f"dict.tgt.txt)") in proc.stdout, proc.stdout[-3000:]
    assert not save.exists()


def test_a_decay_past_the_rounds_end_is_pointed_out(mt_data, tmp_path):
    from omegaconf import OmegaConf

    from fairseq_ext.driver import schedule_note

    def cfg(scheduler, total, end):
        return OmegaConf.create({"lr_scheduler": {"_name": scheduler, "total_num_update": total},
                                 "optimization": {"max_update": end}})
    assert schedule_note(cfg("polynomial_decay", 10, 10)) is None
    assert schedule_note(cfg("inverse_sqrt", 99, 10)) is None
    assert schedule_note(cfg("polynomial_decay", 3200, 60)).startswith(
        "--total-num-update 3200 differs from --max-update 60: the learning rate's decay ends at update 3200, after "
        "each round does (at update 60)")
    assert "ends at update 30, before each round does" in schedule_note(cfg("polynomial_decay", 30, 60))
    proc = fairseq_train(mt_data, tmp_path / "run", *SHORT, "--lr-scheduler", "polynomial_decay",
                         "--total-num-update", "40", "--lottery-rounds", "1")
    assert proc.stdout.count("lottery: --total-num-update 40 differs from --max-update 10") == 1, proc.stdout[-3000:]


def test_lth_demo_refuses_a_bad_rate_before_building_the_corpus(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--rate", "1.5", "--out", str(out)]) == 2
    assert "lth: error: prune rate must lie strictly between 0 and 1, got 1.5" in capsys.readouterr().err
    assert not out.exists()


def test_a_rerun_may_score_rounds_otherwise_and_is_told_what_the_scored_rounds_keep(mt_data, tmp_path):
    from fairseq_ext.evaluate import rescoring_note
    from lth_plugins.sources import check_ticket_source

    bleu = ["--lottery-eval-bleu", "--lottery-generate-args=--beam 2"]
    run = tmp_path / "run"
    spec = spec_of(mt_data, run, "--lottery-prune", *bleu)
    with RunStore(run, stored_config(spec)) as store:
        store.save_snapshot("init", {})
        (run / "round_00").mkdir()
        (run / "round_00" / "metrics.json").write_text("{}")
    assert rescoring_note(spec) is None
    beam5 = spec_of(mt_data, run, "--lottery-prune", "--lottery-eval-bleu", "--lottery-generate-args=--beam 5")
    assert rescoring_note(beam5) == (
        f"round 0 of {run} keep the BLEU scored with --lottery-generate-args '--beam 2'; the rounds still to train "
        f"are scored with --lottery-generate-args '--beam 5'. To rescore a finished round, run the fairseq-generate "
        f"command its round_KK/metrics.json records (generate_command) with the new options")
    RunStore(run, stored_config(beam5)).close()  # allowed: scoring flags train nothing
    assert RunStore(run).config["settings"]["lottery_generate_args"] == "--beam 5"
    # a random ticket is still scored as its winning run is, for the two to compare
    rt = spec_of(mt_data, tmp_path / "rt", "--lottery-prune", *bleu, "--lottery-ticket", "random",
                 "--lottery-masks-from", str(run))
    with pytest.raises(Exception, match="settings.lottery_generate_args: winning run '--beam 5' vs now '--beam 2'"):
        check_ticket_source(RunStore(run), stored_config(rt), 1)
    # so may the references, checkpoint averaging and test split: each scores a finished checkpoint otherwise
    beam5 = beam5.settings["lottery_generate_args"]
    other = spec_of(mt_data, run, "--lottery-prune", "--lottery-eval-bleu", f"--lottery-generate-args={beam5}",
                    "--lottery-references", str(tmp_path), "--lottery-bleu-average-last", "2",
                    "--lottery-test-subset", "valid")
    assert (f"keep the BLEU scored with --lottery-references '', --lottery-bleu-average-last 0, --lottery-test-subset "
            f"'test'; the rounds still to train are scored with --lottery-references '{tmp_path}', "
            f"--lottery-bleu-average-last 2, --lottery-test-subset 'valid'.") in rescoring_note(other)
    RunStore(run, stored_config(other)).close()
    # what a round trains may not change
    trains = spec_of(mt_data, run, "--lottery-prune", "--lottery-eval-bleu", "--label-smoothing", "0.3")
    with pytest.raises(RunStoreError, match=r"Differing keys: settings.label_smoothing: stored 0.1 vs now 0.3\. "):
        RunStore(run, stored_config(trains))
