"""The generated "grammar" translation task of the main job: deterministic, its rules hold in every pair, and every
source sentence has one translation (no random synonyms: a perfect model scores 100 BLEU)."""
import random

from fairseq_ext.data import Grammar, grammar_pairs, write_translation_corpus


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


def test_every_source_sentence_has_one_translation():
    g = Grammar(0)
    first = grammar_pairs(2000, random.Random(7))
    # the same source words always give the same target words: nouns by noun and number, no synonyms
    for src, tgt in first:
        nouns = [w.split("_") for w in src.split() if w.startswith("n")]
        expected = sorted(f"N{g.noun_perm[int(n[0][1:])]}{'p' if len(n) > 1 else 's'}" for n in nouns)
        assert sorted(w for w in tgt.split() if w.startswith("N")) == expected
    # and a sentence drawn again translates the same way
    again = dict(grammar_pairs(2000, random.Random(7)))
    assert all(again[src] == tgt for src, tgt in first)
