"""The generated "grammar" translation task of the main job: deterministic, its rules hold in every pair, and its
random synonyms cap a perfect model's BLEU well below 100 (the headroom the demo's claims need)."""
import random

from fairseq_ext.data import Grammar, grammar_oracle_bleu, grammar_pairs, write_translation_corpus


def test_pairs_follow_the_rules():
    g = Grammar(0)
    gender = {f"n{i}": "mf"[x] for i, x in enumerate(g.gender)}
    for src, tgt in grammar_pairs(500, random.Random(3)):
        s, t = src.split(), tgt.split()
        assert t[-1].startswith("V") and s.count("the") + s.count("a") + s.count("the_pl") + s.count("a_pl") == \
            sum(w.startswith("D") for w in t)
        # the verb agrees with the subject's number, every determiner with its noun's gender and number
        subject = next(w for w in s if w.startswith("n"))
        assert t[-1][-1] == ("p" if subject.endswith("_pl") else "s")
        nouns = [w for w in s if w.startswith("n")]
        dets = [w for w in t if w.startswith("D")]
        assert sorted(d[-2] for d in dets) == sorted(gender[n.split("_")[0]] for n in nouns)


def test_corpus_is_deterministic_in_its_seed(tmp_path):
    a = write_translation_corpus(tmp_path / "a", seed=4, n_train=50, n_valid=5, n_test=5, task="grammar")
    b = write_translation_corpus(tmp_path / "b", seed=4, n_train=50, n_valid=5, n_test=5, task="grammar")
    c = write_translation_corpus(tmp_path / "c", seed=5, n_train=50, n_valid=5, n_test=5, task="grammar")
    assert (a / "train.tgt").read_text() == (b / "train.tgt").read_text() != (c / "train.tgt").read_text()


def test_a_perfect_model_stays_well_below_100_bleu(tmp_path):
    raw = write_translation_corpus(tmp_path, seed=0, n_train=10, n_valid=10, n_test=2000, task="grammar")
    assert 60 < grammar_oracle_bleu(raw) < 80
