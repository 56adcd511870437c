"""Small synthetic corpora with learnable structure, generated deterministically from a seed, and their
binarization with fairseq's own `fairseq-preprocess` (run as a subprocess of this interpreter).

* translation: the target is the source sentence reversed, with every source word mapped to a target word
  by a fixed random bijection, plus a few context-dependent rules (a word right after a "marker" word is
  mapped by a second bijection) so that a model needs attention and position, not just a lookup table.
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
                             n_test: int = 200, src: str = "src", tgt: str = "tgt", **kw) -> Path:
    """Write train/valid/test.{src,tgt} text files; deterministic in `seed`."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_test)):
        pairs = translation_pairs(n, rng, table_seed=seed, **kw)
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
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-m", "fairseq_cli.preprocess", *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
