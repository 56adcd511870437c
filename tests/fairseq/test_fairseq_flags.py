"""Flags: listed by --help with --user-dir, bad values refused before any training, plain fairseq untouched."""
import logging
import subprocess

import pytest

from .helpers import BIN, MT_MODEL, USER_DIR, env, fairseq_train


def test_help_lists_lottery_flags_only_with_user_dir():
    with_dir = subprocess.run([str(BIN / "fairseq-train"), "--user-dir", USER_DIR, "--help"], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120).stdout
    for flag in ("--lottery-prune", "--lottery-rounds", "--lottery-rate", "--lottery-schedule", "--lottery-reset",
                 "--lottery-late-reset", "--lottery-ticket", "--lottery-masks-from", "--lottery-include",
                 "--lottery-exclude", "--lottery-eval-bleu", "--lottery-generate-args"):
        assert flag in with_dir, flag
    plain = subprocess.run([str(BIN / "fairseq-train"), "--help"], env=env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120).stdout
    assert "--lottery" not in plain


@pytest.mark.parametrize("flags, message", [
    (["--lottery-rate", "1.5"], "fairseq-train: error: argument --lottery-rate: prune rate must lie strictly "
                                "between 0 and 1"),
    (["--lottery-rounds", "-1"], "fairseq-train: error: argument --lottery-rounds: rounds must be an integer >= 1"),
    (["--lottery-late-reset", "5x"], "late reset point '5x' is not understood"),
    (["--lottery-reset", "sometimes"], "fairseq-train: error: argument --lottery-reset: invalid choice: 'sometimes'"),
    (["--lottery-ticket", "random"], "--lottery-masks-from"),
    (["--lottery-exclude", "nothing.*"], "matches no parameter name"),
    (["--lottery-eval-bleu", "--lottery-generate-args=--beam x"],
     "fairseq-generate refuses it: argument --beam: invalid int value: 'x'"),
    (["--lottery-eval-bleu", "--lottery-generate-args=--beam 2 --no-such-option"],
     "fairseq-generate does not know --no-such-option"),
    (["--lottery-eval-bleu", "--lottery-generate-args=--path other.pt"], "--path is set by the round evaluation"),
    (["--lottery-eval-bleu", "--lottery-generate-args=--scoring chrf"], "--scoring chrf is not BLEU"),
])
def test_bad_flags_fail_before_training(mt_data, tmp_path, flags, message):
    save = tmp_path / "bad"
    proc = fairseq_train(mt_data, save, *MT_MODEL, "--max-update", "10", "--lottery-prune", *flags, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert "usage:" not in proc.stdout  # one line, not fairseq's usage of every option first
    assert proc.stdout.count(message) == 1  # said once
    assert "Start iterating over samples" not in proc.stdout  # no training happened
    assert not save.exists()  # nothing written


def test_plain_fairseq_without_lottery_prune_is_untouched(mt_data, tmp_path):
    save = tmp_path / "plain"
    # plain fairseq stopping mid-epoch can abort at exit while its prefetch thread is inside torch (an upstream
    # race that lottery runs settle; see fairseq_ext.driver.settle_data_threads): no prefetch thread here
    out = fairseq_train(mt_data, save, *MT_MODEL, "--max-update", "5", "--data-buffer-size", "0").stdout
    assert "[lottery" not in out
    assert (save / "checkpoint_last.pt").is_file() and not (save / "round_00").exists()


def test_fairseq_imported_by_a_driver_leaves_logging_as_it_was():
    """fairseq configures the root logger at DEBUG when imported (its text-to-speech tasks call basicConfig) and logs
    that tensorboardX is missing; a driver script or report importing it through fairseq_ext prints neither, nor
    the debug lines of what it imports afterwards."""
    code = ("import logging, fairseq_ext; fairseq_ext.import_fairseq_quietly(); import fairseq.tasks; "
            "import fairseq_ext.evaluate; root = logging.getLogger(); print(len(root.handlers), root.level); "
            "logging.getLogger('later').debug('a debug line')")
    proc = subprocess.run([str(BIN / "python"), "-c", code], env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["0", str(logging.WARNING)], proc
    assert proc.stderr == "", proc.stderr
