"""Figure 5 at small scale: a 2-layer LSTM language model on real English text, winning vs random tickets,
late reset vs reset to init, iterative vs one-shot pruning; metric: test log perplexity (ln ppl, as
fairseq-eval-lm computes it); mean ± std over seeds.

    python examples/small/lstm_lm_fig5.py [--out DIR] [--seeds 1 2 3] [--rounds 3] [--rate 0.5]
                                          [--max-update 2000]

Text: the documentation topics shipped inside CPython itself (`pydoc_data.topics`, the Python Software Foundation
License), without its ASCII-art tables and underlines, lower-cased, punctuation split off; each paragraph once (the
topics repeat each other verbatim), split by a hash of the paragraph into train/valid/test (80/10/10): 65k / 6.7k /
7.6k tokens; words seen fewer than 3 times in training as <unk>. OUT/raw/manifest.json has the counts.
Model: fairseq lstm_lm, embeddings and hidden 128 (650 in the paper), 2 layers, dropout 0.5 between the layers and on
the output, none on the embeddings (the paper: 0.5 between the layers), Adam lr 1e-2 and eps 1e-8 (the paper: lr
1e-3, eps 1e-3; with eps 1e-3 the model learned too slowly to converge in any budget affordable here), decaying
linearly to 0 at the budget, sequences of 35 tokens, batch 32. A seed is fairseq's --seed and --lottery-seed.
Runs per seed (side by side): WT (late reset, iterative), RT with WT's masks, WT reset to init (iterative), WT late
reset one-shot; the last two reuse the first's dense round (--lottery-dense-from).
Claims checked (paper section 4.2.1): (1) winning tickets beat random tickets; (2) late resetting helps at low
pruning (first pruned round); (3) iterative pruning beats one-shot at the highest sparsity. Judged on the means
over seeds, and only if the dense round is converged on the validation split (a plain dense model trained to twice
the budget, after the seeds, gains at most CONVERGED_WITHIN; none of the claims compares a ticket with the dense
line, so a dense model past its best still counts, and is named). Resumable: rerun the same command.
"""
import argparse
import collections
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed_table import add_seeds_flag, mean_std, write_report  # noqa: E402

from fairseq_ext import USER_DIR, demo  # noqa: E402
from fairseq_ext.data import binarize_lm  # noqa: E402

MODEL = ["--task", "language_modeling", "--arch", "lstm_lm", "--decoder-embed-dim", "128",
         "--decoder-hidden-size", "128", "--decoder-out-embed-dim", "128", "--decoder-layers", "2",
         "--dropout", "0.5", "--decoder-dropout-in", "0", "--tokens-per-sample", "35", "--sample-break-mode", "none",
         "--batch-size", "32", "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-8",
         "--lr", "0.01", "--lr-scheduler", "polynomial_decay", "--end-learning-rate", "0",
         "--criterion", "cross_entropy", "--cpu", "--num-workers", "0", "--no-progress-bar", "--log-interval",
         "100", "--seed", "1", "--no-epoch-checkpoints", "--validate-interval", "1000"]
# the best of 1000 / 2000 / 4000 updates on the validation split (benchmarks/bench_lstm_convergence.py, numbers in
# examples/README.md): at twice it the small corpus overfits
MAX_UPDATE = 2000
CONVERGED_WITHIN = 0.02  # ln ppl: doubling the budget improves the dense model's valid log perplexity by at most this
LATE = ["--lottery-reset", "late", "--lottery-late-reset", "1ep"]  # the paper's
RUNS = {  # name: (extra flags, masks from, dense round from)
    "WT late iterative": (LATE, None, None),
    "RT (WT's masks)": ([*LATE, "--lottery-ticket", "random"], "WT late iterative", None),
    "WT init iterative": (["--lottery-reset", "init"], None, "WT late iterative"),
    "WT late one-shot": ([*LATE, "--lottery-schedule", "oneshot"], None, "WT late iterative"),
}


def prose(text: str) -> str:
    """The text without its ASCII-art: table borders and heading underlines (lines of only +-=|*~^#) and table
    column bars. Left in, one test topic's tables made 37% of the test tokens "-", trivially predicted."""
    lines = [line for line in text.splitlines() if not re.fullmatch(r"[\s+\-=|*~^#]*", line)]
    return "\n".join(lines).replace("|", " ")


SPLIT_OF = {0: "valid", 1: "test"}  # a paragraph's hash mod 10: 10% valid, 10% test, the rest train
NEAR_DUPLICATE = 0.5  # a paragraph is dropped when more than this share of its 8-grams appeared in earlier ones


def paragraphs():
    """(tokenized paragraphs, counts of those dropped) of CPython's documentation topics, each paragraph once: the
    topics repeat each other (`compound` holds `try`, `while`, ...), so a topic split leaks whole held-out
    topics into training."""
    import pydoc_data.topics as topics

    kept, seen, counts = [], set(), collections.Counter()
    for key in sorted(topics.topics):
        for text in re.split(r"\n\s*\n", topics.topics[key]):
            words = re.findall(r"[a-z0-9]+|[^\sa-z0-9]", prose(text).lower())
            grams = {tuple(words[i:i + 8]) for i in range(len(words) - 7)}
            if not words:
                continue
            if grams and len(grams & seen) > NEAR_DUPLICATE * len(grams) or not grams and " ".join(words) in seen:
                counts["duplicate paragraphs dropped"] += 1
                counts["duplicate tokens dropped"] += len(words)
                continue
            seen |= grams or {" ".join(words)}
            kept.append(words)
    return kept, counts


def write_corpus(raw: Path) -> Path:
    """train/valid/test.tokens: unique paragraphs split by a hash of their text, words seen fewer than 3 times in
    training as <unk>, 40 words per line; raw/manifest.json counts them and measures what valid and test share
    with training (8-grams). Refuses a folder that holds another corpus."""
    kept, counts = paragraphs()
    splits = {"train": [], "valid": [], "test": []}
    for words in kept:
        splits[SPLIT_OF.get(int(hashlib.sha256(" ".join(words).encode()).hexdigest(), 16) % 10, "train")].append(words)
    vocab = collections.Counter(w for words in splits["train"] for w in words)
    train_grams = {tuple(ws[i:i + 8]) for ws in splits["train"] for i in range(len(ws) - 7)}
    manifest = dict(counts)
    for split, paras in splits.items():
        grams = {tuple(ws[i:i + 8]) for ws in paras for i in range(len(ws) - 7)}
        manifest[split] = {"paragraphs": len(paras), "tokens": sum(map(len, paras)),
                           "8-grams also in train": round(len(grams & train_grams) / max(1, len(grams)), 3)}
        words = [w if vocab[w] >= 3 else "<unk>" for ws in paras for w in ws]
        text = "".join(" ".join(words[j:j + 40]) + "\n" for j in range(0, len(words), 40))
        if (raw / f"{split}.tokens").exists() and (raw / f"{split}.tokens").read_text() != text:
            raise SystemExit(f"{raw} holds another version of this corpus (its {split}.tokens differs), and the runs "
                             f"beside it were trained on that: give a new --out")
        raw.mkdir(parents=True, exist_ok=True)
        (raw / f"{split}.tokens").write_text(text)
    (raw / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return raw


def log_ppl(data, checkpoint, subset: str = "test") -> float:
    """fairseq-eval-lm's loss (base 2) of `checkpoint` on `subset` as ln ppl, on this script's 35-token samples (as
    the lottery's round metrics are), not eval-lm's default 1024."""
    env = dict(os.environ, **demo.PLAIN_CHECKPOINTS_ENV, OMP_NUM_THREADS="1")
    samples = [x for flag in ("--tokens-per-sample", "--sample-break-mode")
               for x in (flag, MODEL[MODEL.index(flag) + 1])]
    out = subprocess.run([sys.executable, "-m", "fairseq_cli.eval_lm", str(data), "--path", str(checkpoint),
                          "--gen-subset", subset, "--cpu", "--batch-size", "32", *samples], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    m = re.search(r"Loss \(base 2\): ([0-9.]+)", out)
    if not m:
        raise SystemExit(f"fairseq-eval-lm gave no loss:\n{out[-3000:]}")
    return float(m.group(1)) * math.log(2)


def dense_log_ppl(data, save: Path, max_update: int, seed=None, subset: str = "valid") -> float:
    """The log perplexity on `subset` of a plain dense model with this script's flags trained to `max_update` in
    `save` (demo.dense_score: trained unless done, the score kept)."""
    return demo.dense_score(data, save, max_update, lambda s: log_ppl(data, s / "checkpoint_last.pt", subset), seed,
                            MODEL, name=f"{subset}_log_ppl")


def convergence(at_budget: float, at_twice: float):
    """(converged, verdict) of a dense model's validation log perplexity at its budget and at twice that:
    converged when more training gains at most CONVERGED_WITHIN; worse with more training is named as past its
    best (overfitting), which the tickets' comparisons with each other do not mind."""
    change = at_twice - at_budget
    word = ("NOT CONVERGED (still improving)" if change < -CONVERGED_WITHIN
            else "CONVERGED" if change <= CONVERGED_WITHIN else "CONVERGED, past its best (more training overfits)")
    return change >= -CONVERGED_WITHIN, f"{word}: doubling the budget changes it by {change:+.3f} " \
                                        f"(goal: improves it by at most {CONVERGED_WITHIN})"


def make_data(out: Path) -> Path:
    return binarize_lm(write_corpus(out / "raw"), out / "bin")


def run_dir(out: Path, seed: int, name: str) -> Path:
    return out / f"s{seed}" / re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def run_seed(out: Path, base, seed: int) -> dict:
    """The four runs of one seed side by side; returns {name: run directory}."""
    dirs = {name: run_dir(out, seed, name) for name in RUNS}
    waits = []  # the random ticket's round k waits for the winning ticket's mask k, the ablations for its round 0
    for name, (extra, masks_from, dense_from) in RUNS.items():
        dirs[name].mkdir(parents=True, exist_ok=True)
        src = ["--lottery-masks-from", str(dirs[masks_from])] if masks_from else []
        src += ["--lottery-dense-from", str(dirs[dense_from])] if dense_from else []
        seed_args = ["--seed", str(seed), "--lottery-seed", str(seed)]  # lth report tells seeds apart by the latter
        waits.append(demo.start_fairseq_train([*base, *extra, *src, *seed_args, "--save-dir", str(dirs[name])],
                                              f"{dirs[name]}.log"))
    demo.wait_all(waits)
    return dirs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_output/small_lstm")
    add_seeds_flag(p, (1, 2, 3))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--max-update", type=int, default=MAX_UPDATE)
    a = p.parse_args()
    out = Path(a.out).resolve()
    t0 = time.time()
    data = make_data(out)
    base = [str(data), "--user-dir", USER_DIR, *MODEL, *demo.schedule_args(a.max_update), "--lottery-prune",
            "--lottery-rounds", str(a.rounds), "--lottery-rate", str(a.rate)]
    first = a.seeds[0]
    recs = {name: [] for name in RUNS}
    for seed in a.seeds:
        print(f"[fig5] seed {seed} -> {out / f's{seed}'}", flush=True)
        for name, d in run_seed(out, base, seed).items():
            recs[name].append(demo.read_rounds(d))
        print(f"[fig5] seed {seed} done at {time.time() - t0:.0f} s", flush=True)
    twice = dense_log_ppl(data, out / f"dense_x2_s{first}", 2 * a.max_update, first)
    at_budget = log_ppl(data, run_dir(out, first, "WT late iterative") / "round_00" / "checkpoint_last.pt", "valid")
    names = list(RUNS)

    def values(name, k):
        return [r[k].metrics["test_log_ppl"] for r in recs[name] if k in r]

    v = lambda n, k: mean_std(values(n, k))[0]  # noqa: E731
    ok, verdict = convergence(at_budget, twice)
    print(f"\ntest log perplexity (lower is better), mean ± std over seeds {a.seeds}; dense "
          f"{v('WT late iterative', 0):.3f} after {a.max_update} updates")
    print(f"{'round':>5} {'pruned':>7} | " + " | ".join(f"{n:>18}" for n in names))
    ks = sorted(recs[names[0]][0])
    for k in ks:
        cells = [f"{mean_std(values(n, k))[0]:9.3f} ± {mean_std(values(n, k))[1]:.3f}" if values(n, k)
                 else f"{'-':>18}" for n in names]
        print(f"{k:>5} {100 * recs[names[0]][0][k].fraction_pruned:6.1f}% | " + " | ".join(cells))
    print(f"dense round of seed {first}, validation log perplexity {at_budget:.3f} at the budget, {twice:.3f} at "
          f"twice it: {verdict}")
    print(f"settings: {a.rounds} rounds, rate {a.rate}, {a.max_update} updates per round, seeds {a.seeds}; "
          f"runtime {time.time() - t0:.0f} s")
    write_report([out / f"s{seed}" for seed in a.seeds], out)
    pruned = [k for k in ks if k > 0]
    claims = {
        "1 (WT below RT at every pruned round)": all(v("WT late iterative", k) < v("RT (WT's masks)", k)
                                                     for k in pruned),
        "2 (late reset <= reset to init at round 1)": v("WT late iterative", 1) <= v("WT init iterative", 1),
        f"3 (iterative <= one-shot at round {pruned[-1]})": v("WT late iterative", pruned[-1])
        <= v("WT late one-shot", pruned[-1]),
    }
    for claim, held in claims.items():
        word = ("HELD" if held else "NOT HELD") if ok else "NOT TESTED (the dense round is not converged)"
        print(f"claim {claim}: {word}")


if __name__ == "__main__":
    main()
