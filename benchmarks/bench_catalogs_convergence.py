"""Is a dense Transformer converged on real English->German (`lth data catalogs`)? The main job's model and flags
(`fairseq_ext.demo`: MODEL, the schedule decaying to 0 at the budget) trained for a budget of updates and for twice
it, side by side, both scored on the VALIDATION split (never test) with sacreBLEU and chrF on sentencepiece-decoded
beam-5 output (`catalogs.score`); converged as the demo's dense round is judged (`demo.convergence`).

    python benchmarks/bench_catalogs_convergence.py --data OUT/en-de [--max-update 1600] [--out DIR]

OUT is what `lth data catalogs --langs de OUT` built. A rerun in the same --out scores what was trained and trains
what did not finish.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import catalogs, demo, evaluate  # noqa: E402


def valid_scores(data: Path, save: Path, lang: str) -> dict:
    """sacreBLEU / chrF of SAVE/checkpoint_last.pt on the validation split against its raw references, as the
    lottery's rounds score with --lottery-references (`evaluate.scored_generate`)."""
    cmd = demo.dense_generate_command(data, save, "valid", (catalogs.SOURCE_LANG, lang), catalogs.GENERATE_ARGS)
    demo.load_plain_checkpoints()
    return evaluate.scored_generate(cmd, str(save / "valid_generate"), str(data / "raw"), lang)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="an OUT/en-X folder of lth data catalogs")
    p.add_argument("--max-update", type=int, default=1600)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    a = p.parse_args()
    data = Path(a.data).resolve()
    lang = catalogs.pair_target(data)
    flags = [*demo.MODEL, *demo.COMMON, "--source-lang", "en", "--target-lang", lang]
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_catalogs_conv_"))
    out.mkdir(parents=True, exist_ok=True)
    budgets = (a.max_update, 2 * a.max_update)
    t0 = time.time()
    todo = [n for n in budgets if not demo.dense_trained(out / f"dense_{n}")]
    demo.wait_all([demo.start_dense(data, out / f"dense_{n}", n, flags=flags) for n in todo])
    print(f"trained {todo or 'nothing (done before)'} in {time.time() - t0:.0f} s (side by side)", flush=True)
    scores = {n: demo.dense_score(data, out / f"dense_{n}", n, lambda save: valid_scores(data, save, lang),
                                  flags=flags) for n in budgets}
    for n in budgets:
        s = scores[n]
        print(f"dense en-{lang}, {n:5d} updates, valid: BLEU {s['bleu']:.2f}  chrF {s['chrf']:.2f}  "
              f"({s['empty_hypotheses']} empty hypotheses)")
    print(f"signatures: {scores[budgets[0]]['bleu_signature']} | {scores[budgets[0]]['chrf_signature']}")
    ok, verdict = demo.convergence(scores[budgets[0]]["bleu"], scores[budgets[1]]["bleu"])
    print(f"valid BLEU from {budgets[0]} to {budgets[1]} updates: {verdict} (goal: |change| <= "
          f"{demo.CONVERGED_WITHIN} BLEU); {time.time() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
