"""The report names a fairseq translation run by its language pair, from what fairseq-train records."""
import shutil

from lth_plugins.report.collect import task_identity

from .test_fairseq_identity import spec_of, stored_config


def test_the_language_pair_fairseq_train_records_names_the_reports_task(mt_data, tmp_path):
    pairs = {"de": "translation src-de", "fr": "translation src-fr"}
    for target, name in pairs.items():
        data = tmp_path / f"data-{target}"  # the pair's dictionaries, as --task translation loads them
        shutil.copytree(mt_data, data)
        shutil.copy(data / "dict.tgt.txt", data / f"dict.{target}.txt")
        spec = spec_of(data, tmp_path / target, "--source-lang", "src", "--target-lang", target)
        assert task_identity(stored_config(spec)) == name
    inferred = stored_config(spec_of(mt_data, tmp_path / "inferred"))  # the pair fairseq-train reads off the data
    assert task_identity(inferred) == "translation src-tgt"
    del inferred["label"]  # a run recorded before runs had labels, without -s/-t: its task alone
    assert task_identity(inferred) == "translation"
