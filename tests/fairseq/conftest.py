import pytest

from .helpers import ROOT  # noqa: F401


@pytest.fixture(scope="session")
def mt_data(tmp_path_factory):
    pytest.importorskip("fairseq")
    from fairseq_ext.data import make_translation_data
    return make_translation_data(tmp_path_factory.mktemp("mt"), seed=0, n_train=1000, n_valid=100, n_test=100)


@pytest.fixture(scope="session")
def lm_data(tmp_path_factory):
    pytest.importorskip("fairseq")
    from fairseq_ext.data import make_lm_data
    return make_lm_data(tmp_path_factory.mktemp("lm"), seed=0, n_train=1000, n_valid=100, n_test=100)


@pytest.fixture(scope="session")
def mt_winning(mt_data, tmp_path_factory):
    """3 rounds of a winning ticket on the synthetic translation task (shared by several tests)."""
    from .helpers import MT_MODEL, fairseq_train
    save = tmp_path_factory.mktemp("mt_wt") / "wt"
    proc = fairseq_train(mt_data, save, *MT_MODEL, *WT_ARGS)
    return save, proc.stdout


GEN_ARGS = "--lottery-generate-args=--beam 2 --max-len-a 1.2 --max-len-b 10"
WT_ARGS = ["--max-update", "40", "--save-interval-updates", "10", "--lottery-prune", "--lottery-rounds", "3",
           "--lottery-reset", "late", "--lottery-late-reset", "10u", "--lottery-eval-bleu",
           GEN_ARGS]
