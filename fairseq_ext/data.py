"""Small synthetic corpora with learnable structure, generated deterministically from a seed, and their
binarization with fairseq's own `fairseq-preprocess` (run as a subprocess of this interpreter).

* translation, two tasks:
  - "reverse" (quick, for tests): the target is the source sentence reversed, every word mapped by a fixed random
    bijection, a word right after a "marker" word by a second one;
  - "grammar" (the main job): an SVO source language with a prepositional phrase, translated into a verb-final
    language with the phrase in front, nouns before their adjectives and determiners, gender and number
    agreement and verbs whose translation depends on the object. Every source sentence has one correct
    translation, so a perfect model scores 100 BLEU and no score carries noise the task made itself.
* language modeling: sentences drawn from a sparse second-order Markov chain over a small vocabulary,
  so a good model reaches a much lower perplexity than a unigram model.
"""
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


def _words(prefix: str, n: int) -> List[str]:
    return [f"{prefix}{i}" for i in range(n)]


def translation_pairs(n: int, rng: random.Random, vocab: int = 24, min_len: int = 3, max_len: int = 9,
                      table_seed: int = 0) -> List[tuple]:
    """`n` (source, target) sentence pairs of the synthetic reverse-and-map language."""
    trng = random.Random(table_seed)
    src_words = _words("s", vocab)
    tgt_words = _words("t", vocab)
    perm1 = list(range(vocab))
    perm2 = list(range(vocab))
    trng.shuffle(perm1)
    trng.shuffle(perm2)
    markers = set(trng.sample(range(vocab), max(1, vocab // 6)))
    pairs = []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        src = [rng.randrange(vocab) for _ in range(length)]
        tgt = []
        for i, w in enumerate(src):
            after_marker = i > 0 and src[i - 1] in markers
            tgt.append(tgt_words[perm2[w] if after_marker else perm1[w]])
        tgt.reverse()
        pairs.append((" ".join(src_words[w] for w in src), " ".join(tgt)))
    return pairs


class Grammar:
    """The fixed lexicon of the "grammar" translation task, drawn from `table_seed`."""

    def __init__(self, table_seed: int = 0, nouns: int = 48, adjectives: int = 24, verbs: int = 24,
                 preps: int = 6):
        r = random.Random(table_seed)
        self.nouns, self.adjectives, self.verbs, self.preps = nouns, adjectives, verbs, preps
        self.gender = [r.randrange(2) for _ in range(nouns)]
        self.animate = [r.random() < 0.5 for _ in range(nouns)]
        # a third of the verbs translate differently for an animate object
        self.polysemous = [r.random() < 1 / 3 for _ in range(verbs)]
        self.noun_perm = r.sample(range(nouns), nouns)
        self.verb_perm = r.sample(range(verbs), verbs)
        self.adj_perm = r.sample(range(adjectives), adjectives)
        self.prep_perm = r.sample(range(preps), preps)

    def noun_phrase(self, rng: random.Random):
        """(source words, target words, noun, plural) of a random noun phrase."""
        noun, plural, definite = rng.randrange(self.nouns), rng.random() < 0.4, rng.random() < 0.5
        adjs = rng.sample(range(self.adjectives), rng.choice((0, 0, 1, 1, 2)))
        det = ("the" if definite else "a") + ("_pl" if plural else "")
        src = [det, *(f"a{a}" for a in adjs), f"n{noun}" + ("_pl" if plural else "")]
        g, num = "mf"[self.gender[noun]], "p" if plural else "s"
        tgt = [f"N{self.noun_perm[noun]}{num}", *(f"A{self.adj_perm[a]}{g}{num}" for a in reversed(adjs)),
               f"D{int(definite)}{g}{num}"]
        return src, tgt, noun, plural

    def sentence(self, rng: random.Random):
        """One (source, target) pair: SVO [prep NP] -> [prep' NP'] S' O' V'."""
        s_src, s_tgt, _, s_pl = self.noun_phrase(rng)
        o_src, o_tgt, obj, _ = self.noun_phrase(rng)
        verb = rng.randrange(self.verbs)
        sense = int(self.polysemous[verb] and self.animate[obj])
        v_src = [f"v{verb}"]
        v_tgt = [f"V{self.verb_perm[verb]}{'xy'[sense]}{'p' if s_pl else 's'}"]
        src, tgt = s_src + v_src + o_src, s_tgt + o_tgt + v_tgt
        if rng.random() < 0.5:
            prep = rng.randrange(self.preps)
            p_src, p_tgt, _, _ = self.noun_phrase(rng)
            src, tgt = src + [f"p{prep}"] + p_src, p_tgt + [f"P{self.prep_perm[prep]}"] + tgt
        return " ".join(src), " ".join(tgt)


def grammar_pairs(n: int, rng: random.Random, table_seed: int = 0) -> List[tuple]:
    """`n` (source, target) pairs of the "grammar" translation task."""
    g = Grammar(table_seed)
    return [g.sentence(rng) for _ in range(n)]


TASKS = {"reverse": translation_pairs, "grammar": grammar_pairs}


def lm_sentences(n: int, rng: random.Random, vocab: int = 40, branching: int = 3, min_len: int = 5,
                 max_len: int = 20, table_seed: int = 0) -> List[str]:
    """`n` sentences of a sparse second-order Markov language (each context allows `branching` words)."""
    trng = random.Random(table_seed)
    words = _words("w", vocab)
    table: Dict[tuple, List[int]] = {}

    def successors(a, b):
        key = (a, b)
        if key not in table:
            table[key] = trng.sample(range(vocab), branching)
        return table[key]

    out = []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        a, b = -1, -1
        sent = []
        for _ in range(length):
            choices = successors(a, b)
            # skewed choice: first successor is the most likely
            r = rng.random()
            w = choices[0] if r < 0.6 else choices[1] if r < 0.85 else choices[2 % branching]
            sent.append(words[w])
            a, b = b, w
        out.append(" ".join(sent))
    return out


def write_translation_corpus(raw_dir, seed: int = 0, n_train: int = 2000, n_valid: int = 200,
                             n_test: int = 200, src: str = "src", tgt: str = "tgt", task: str = "reverse",
                             **kw) -> Path:
    """Write train/valid/test.{src,tgt} text files of `task` (a name in TASKS); deterministic in `seed`."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        pairs = TASKS[task](n, rng, table_seed=seed, **kw)
        (raw_dir / f"{split}.{src}").write_text("".join(s + "\n" for s, _ in pairs))
        (raw_dir / f"{split}.{tgt}").write_text("".join(t + "\n" for _, t in pairs))
    return raw_dir


def write_lm_corpus(raw_dir, seed: int = 0, n_train: int = 2000, n_valid: int = 200, n_test: int = 200,
                    **kw) -> Path:
    """Write train/valid/test.tokens text files (one sentence a line); deterministic in `seed`."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        (raw_dir / f"{split}.tokens").write_text("".join(s + "\n" for s in lm_sentences(n, rng, table_seed=seed,
                                                                                          **kw)))
    return raw_dir


def _preprocess(args: List[str], log: Optional[Path] = None) -> None:
    """fairseq-preprocess `args`; it dies with this process, so a killed build leaves no writer behind."""
    from lth_plugins.children import die_with_parent

    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    parent = os.getpid()
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=lambda: die_with_parent(parent=parent))
    if log is not None:
        Path(log).write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError("fairseq-preprocess failed:\n" + proc.stdout[-3000:])


def binarize_translation(raw_dir, dest_dir, src: str = "src", tgt: str = "tgt") -> Path:
    """fairseq-preprocess with a joined dictionary (so --share-all-embeddings is possible)."""
    raw_dir, dest_dir = Path(raw_dir), Path(dest_dir)
    if (dest_dir / f"test.{src}-{tgt}.{tgt}.bin").exists():
        return dest_dir
    _preprocess(["--source-lang", src, "--target-lang", tgt, "--trainpref", str(raw_dir / "train"),
                 "--validpref", str(raw_dir / "valid"), "--testpref", str(raw_dir / "test"),
                 "--destdir", str(dest_dir), "--joined-dictionary", "--workers", "1"],
                log=None)
    return dest_dir


def binarize_lm(raw_dir, dest_dir) -> Path:
    raw_dir, dest_dir = Path(raw_dir), Path(dest_dir)
    if (dest_dir / "test.bin").exists():
        return dest_dir
    _preprocess(["--only-source", "--trainpref", str(raw_dir / "train.tokens"),
                 "--validpref", str(raw_dir / "valid.tokens"), "--testpref", str(raw_dir / "test.tokens"),
                 "--destdir", str(dest_dir), "--workers", "1"])
    return dest_dir


def make_translation_data(root, seed: int = 0, **kw) -> Path:
    """Generate and binarize the synthetic translation corpus under `root`; returns the data-bin dir."""
    root = Path(root)
    write_translation_corpus(root / "raw", seed=seed, **kw)
    return binarize_translation(root / "raw", root / "bin")


def make_lm_data(root, seed: int = 0, **kw) -> Path:
    root = Path(root)
    write_lm_corpus(root / "raw", seed=seed, **kw)
    return binarize_lm(root / "raw", root / "bin")
