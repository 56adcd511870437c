"""The report names a fairseq translation run by its language pair, from the settings fairseq-train records."""
from lth_plugins.report.collect import task_identity

from .test_fairseq_identity import spec_of, stored_config


def test_the_language_pair_fairseq_train_records_names_the_reports_task(mt_data, tmp_path):
    pairs = {"de": "translation src-de", "fr": "translation src-fr"}
    for target, name in pairs.items():
        spec = spec_of(mt_data, tmp_path / target, "--source-lang", "src", "--target-lang", target)
        assert task_identity(stored_config(spec)) == name
    assert task_identity(stored_config(spec_of(mt_data, tmp_path / "inferred"))) == "translation"
