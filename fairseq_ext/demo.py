"""The main job: a fairseq lottery experiment on a corpus the project generates itself.

    python -m fairseq_ext.demo [--out DIR] [--rounds 4] [--rate 0.4] [--max-update 300] [--seed 0]

1. writes a synthetic translation corpus (reverse the sentence and map every word through a fixed random
   bijection, with a context rule after "marker" words; deterministic in --seed) and binarizes it with
   fairseq-preprocess;
2. runs `fairseq-train --user-dir fairseq_ext --lottery-prune` for the winning ticket (late reset), then for
   the random ticket with the winning ticket's masks (--lottery-ticket random --lottery-masks-from);
3. prints a per-round table of both tickets (fraction pruned, valid loss, BLEU).
Both runs resume where they stopped when the command is run again.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from . import USER_DIR
from .data import make_translation_data

MODEL = ["--task", "translation", "--arch", "transformer", "--encoder-layers", "2", "--decoder-layers", "2",
         "--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
         "--decoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
         "--share-all-embeddings", "--dropout", "0.1", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
         "--lr", "0.003", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "100", "--max-tokens", "3000",
         "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
COMMON = ["--cpu", "--num-workers", "0", "--no-progress-bar", "--log-interval", "100", "--seed", "1",
          "--no-epoch-checkpoints", "--validate-interval", "1000"]


def fairseq_train(args, log_path):
    cmd = [sys.executable, "-c", "from fairseq_cli.train import cli_main; cli_main()", *args]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    with open(log_path, "a") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:  # everything to the log; the lottery's round lines to the console too
            log.write(line)
            if line.startswith("[lottery ") and " round " in line:
                print("  " + line.rstrip(), file=sys.stderr, flush=True)
        proc.wait()
    if proc.returncode != 0:
        tail = Path(log_path).read_text()[-3000:]
        raise SystemExit(f"fairseq-train failed (see {log_path}):\n{tail}")


def read_rounds(run_dir):
    out = {}
    for p in sorted(Path(run_dir).glob("round_*/metrics.json")):
        rec = json.loads(p.read_text())
        out[rec["round"]] = rec
    return out


def table(wt_dir, rt_dir) -> str:
    wt, rt = read_rounds(wt_dir), read_rounds(rt_dir)
    lines = [f"{'round':>5} {'pruned':>7} | {'WT valid loss':>13} {'WT BLEU':>8} {'WT BLEU(tok)':>12} | "
             f"{'RT valid loss':>13} {'RT BLEU':>8} {'RT BLEU(tok)':>12}"]
    for k in sorted(set(wt) | set(rt)):
        def cols(rec):
            if rec is None:
                return f"{'-':>13} {'-':>8} {'-':>12}"
            m = rec["metrics"]
            return f"{m.get('valid_loss', float('nan')):13.3f} {m['bleu']:8.2f} {m['bleu_tok']:12.2f}"
        src = wt.get(k) or rt.get(k)
        lines.append(f"{k:>5} {100 * src['fraction_pruned']:6.1f}% | {cols(wt.get(k))} | "
                     f"{cols(rt.get(k))}")  # a random ticket has no round 0 of its own: "-"
    return "\n".join(lines)


def run_demo(out="lth_fairseq_demo", rounds=4, rate=0.4, max_update=300, seed=0, n_train=4000,
             quiet=False) -> str:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = make_translation_data(out / "data", seed=seed, n_train=n_train, n_valid=200, n_test=200)
    lottery = ["--lottery-prune", "--lottery-rounds", str(rounds), "--lottery-rate", str(rate),
               "--lottery-reset", "late", "--lottery-late-reset", "50u", "--lottery-eval-bleu",
               "--lottery-bleu-beam", "4", "--max-update", str(max_update)]
    base = [str(data), "--user-dir", USER_DIR, *MODEL, *COMMON, *lottery]
    if not quiet:
        print(f"[demo] data in {data}; winning ticket ({rounds} rounds, rate {rate}) -> {out / 'wt'}", flush=True)
    fairseq_train([*base, "--save-dir", str(out / "wt")], out / "wt.log")
    if not quiet:
        print(f"[demo] random ticket (the winning ticket's masks, fresh init) -> {out / 'rt'}", flush=True)
    fairseq_train([*base, "--save-dir", str(out / "rt"), "--lottery-ticket", "random", "--lottery-masks-from",
                   str(out / "wt")], out / "rt.log")
    text = table(out / "wt", out / "rt")
    print(text)
    print(f"[demo] done in {time.time() - t0:.0f} s; run stores: {out / 'wt'} {out / 'rt'}")
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="lth_fairseq_demo")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rate", type=float, default=0.4)
    p.add_argument("--max-update", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    run_demo(a.out, a.rounds, a.rate, a.max_update, a.seed)


if __name__ == "__main__":
    main()
