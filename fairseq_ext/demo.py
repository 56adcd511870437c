"""The main job: a fairseq lottery experiment on a corpus the project generates itself.

    python -m fairseq_ext.demo [--out DIR] [--rounds 3] [--rate 0.7] [--max-update 800] [--seed 0]
                               [--generate-args '--beam 4 ...']

1. writes the generated "grammar" translation corpus (fairseq_ext/data.py: reordering, agreement, verbs whose
   translation depends on their object; one correct translation per sentence, so a perfect model scores 100
   BLEU; deterministic in --seed) and binarizes it with fairseq-preprocess;
2. runs `fairseq-train --user-dir fairseq_ext --lottery-prune` for the winning ticket (late reset) and, beside
   it, the random ticket with the winning ticket's masks (--lottery-ticket random --lottery-masks-from), whose
   round k starts as soon as the winning ticket has written mask k;
3. prints a per-round table: fraction pruned, updates trained, BLEU and valid loss of both tickets side by side
   (BLEU: plain fairseq-generate on the round's checkpoint, its defaults unless --generate-args; the dense
   round's command is printed so that it can be rerun by hand).
Both runs resume where they stopped when the command is run again.
"""
import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from lth_plugins.atomic import atomic_write_json, read_json
from lth_plugins.children import die_with_parent
from lth_plugins.hparams import LotteryConfig, Reset, Ticket
from lth_plugins.status import Column, metric_columns, pruned_column, render
from lth_plugins.status import updates_trained
from lth_plugins.store import RunStore

from . import USER_DIR, train_command
from .data import make_translation_data

# The dense round converges within the budget: BLEU at DEFAULTS["max_update"] updates is within 1 BLEU of BLEU at
# twice that (benchmarks/bench_demo_convergence.py checks and prints both). The learning rate decays linearly to 0
# at the budget (`schedule_args`): with inverse_sqrt at this peak, the loss spiked now and then near its floor and a
# round's score depended on where the last spike fell.
MODEL = ["--task", "translation", "--arch", "transformer", "--encoder-layers", "2", "--decoder-layers", "2",
         "--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
         "--decoder-ffn-embed-dim", "128", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
         "--encoder-normalize-before", "--decoder-normalize-before", "--share-all-embeddings", "--dropout", "0",
         "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "0.007", "--lr-scheduler", "polynomial_decay",
         "--end-learning-rate", "0", "--warmup-updates", "50", "--max-tokens", "3000",
         "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]
COMMON = ["--cpu", "--num-workers", "0", "--no-progress-bar", "--log-interval", "100", "--seed", "1",
          "--no-epoch-checkpoints", "--validate-interval", "1000"]
DEFAULTS = {"rounds": 3, "rate": 0.7, "max_update": 800}
# the corpus of the demo, the Figure 6 script and the convergence benchmark; on its 2,000 test sentences the dense
# BLEU of three model seeds spread by 0.04 (examples/README.md)
DATA = {"task": "grammar", "n_train": 40000, "n_valid": 2000, "n_test": 2000}
LATE_RESET = "20u"


def start_fairseq_train(args, log_path, env=None):
    """Start fairseq-train (`env`: variables to add); its output goes to `log_path` and the lottery's round lines
    to the console. Returns a function that waits for it and raises SystemExit (naming the log) when it failed.
    The run gets SIGTERM when this process dies, however it dies: an orphan would hold its run directory against
    the rerun."""
    cmd = train_command(*args)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), **(env or {}))
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a")
    parent = os.getpid()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent))

    def pump():
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("[lottery ") and " round " in line:
                print("  " + line.rstrip(), file=sys.stderr, flush=True)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()

    def wait():
        proc.wait()
        pumping.join()
        log.close()
        if proc.returncode != 0:
            tail = Path(log_path).read_text()[-3000:]
            raise SystemExit(f"fairseq-train failed (see {log_path}):\n{tail}")

    wait.process = proc
    return wait


def wait_all(waits) -> None:
    """Wait for runs started by `start_fairseq_train`, in order; when one fails, stop the others (a random ticket
    would wait for masks that never come) and raise its error."""
    with stopped_on_error(waits):
        for wait in waits:
            wait()


@contextlib.contextmanager
def stopped_on_error(waits):
    """Runs started by `start_fairseq_train` that go on beside the block, stopped when it fails: a failed script
    leaves no run behind to hold its run directory against the same command."""
    try:
        yield
    except BaseException:
        for wait in waits:
            if wait.process.poll() is None:
                wait.process.terminate()
                wait.process.wait()
        raise


def read_rounds(run_dir) -> dict:
    """{k: the record of round k} of the rounds `run_dir` has finished."""
    store = RunStore.view(run_dir)
    return {k: store.read_round(k) for k in store.finished_rounds()}


def make_data(root, seed: int = 0) -> Path:
    """The demo's corpus (DATA) under `root`, binarized; returns the data-bin folder."""
    return make_translation_data(root, seed=seed, **DATA)


def table(wt_dir, rt_dir) -> str:
    """Per round: fraction pruned, updates trained, BLEU and valid loss of WT and RT side by side; the random
    ticket has no round 0 (the dense round is shared), so it shows "-" there."""
    records = {Ticket.WINNING: read_rounds(wt_dir), Ticket.RANDOM: read_rounds(rt_dir)}
    by_round = {}
    for ticket, rounds in records.items():
        for k, rec in rounds.items():
            by_round.setdefault(k, {})[str(ticket)] = {"record": rec, "fraction_pruned": rec.fraction_pruned}
    lines = []
    dense = records[Ticket.WINNING].get(0)
    if dense is not None:
        m = dense.metrics
        lines += [f"dense (round 0): BLEU {m['bleu']:.2f} after {updates_trained(dense)} updates",
                  f"  reproduce: {m['generate_command']}"]

    def updates(k, rows):
        return "/".join(sorted({str(updates_trained(row["record"])) for row in rows.values()}))

    columns = [Column("round", 5, lambda k, rows: str(k)), pruned_column(" "), Column("updates", 7, updates),
               *metric_columns("bleu", "BLEU", 7, ".2f"), *metric_columns("valid_loss", "valid loss", 13, ".3f")]
    lines.append(render(columns, by_round))
    return "\n".join(lines)


def run_demo(out, rounds=DEFAULTS["rounds"], rate=DEFAULTS["rate"],
             max_update=DEFAULTS["max_update"], seed=0, generate_args="", quiet=False) -> str:
    lottery_config(rounds, rate).validate(total_updates=max_update)  # a bad flag fails before the corpus is built
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = make_data(out / "data", seed)
    base = [str(data), "--user-dir", USER_DIR, *train_args(rounds, rate, max_update, generate_args)]
    if not quiet:
        print(f"[demo] data in {data}; winning ticket ({rounds} rounds, rate {rate}, every round trains to "
              f"update {max_update}) -> {out / 'wt'}; random ticket (the winning ticket's masks, fresh init) "
              f"-> {out / 'rt'}, each of its rounds starting as soon as the winning ticket's mask is written",
              flush=True)
    (out / "wt").mkdir(exist_ok=True)  # the random ticket finds the winning run's directory at once
    wait_wt = start_fairseq_train([*base, "--save-dir", str(out / "wt")], out / "wt.log")
    # the random ticket runs behind the winning ticket, on the other core: its round k waits for mask k
    wait_rt = start_fairseq_train([*base, "--save-dir", str(out / "rt"), "--lottery-ticket", "random",
                                   "--lottery-masks-from", str(out / "wt")], out / "rt.log")
    wait_all([wait_wt, wait_rt])
    text = table(out / "wt", out / "rt")
    print(text)
    print(f"[demo] done in {time.time() - t0:.0f} s; run stores: {out / 'wt'} {out / 'rt'}")
    return text


CONVERGED_WITHIN = 1.0  # BLEU: a dense round is converged when twice its budget changes BLEU by at most this


def start_dense(data, save, max_update, seed=None, flags=None):
    """Plain fairseq-train to `max_update` (log: SAVE.log): the demo's dense round, which trains unmasked as plain
    fairseq does, and resumes from its last checkpoint when started again. `seed`: fairseq's --seed instead of the
    flags' one; `flags`: instead of the demo's model flags."""
    seed_args = ["--seed", str(seed)] if seed is not None else []
    flags = [*MODEL, *COMMON] if flags is None else flags
    return start_fairseq_train([str(data), "--save-dir", str(save), *flags, *schedule_args(max_update),
                                *seed_args], f"{save}.log", env=PLAIN_CHECKPOINTS_ENV)


def dense_score(data, save, max_update, score, seed=None, flags=None, name="score"):
    """`score(save)` of the plain dense model that `start_dense` trains in `save`: trained, or resumed, unless
    finished (a resumed finished run would train one update more). Kept in SAVE/NAME.json (a name per kind of
    score), written last: a run stopped anywhere before trains on or scores again."""
    kept = Path(save) / f"{name}.json"
    if not kept.is_file():
        if not dense_trained(save):
            start_dense(data, save, max_update, seed, flags)()
        atomic_write_json(kept, {"score": score(Path(save))})
    return read_json(kept)["score"]


def dense_trained(save) -> bool:
    """Whether the dense model of `start_dense` in `save` finished training (its log says so)."""
    log = Path(f"{save}.log")
    return log.is_file() and "done training" in log.read_text()


def dense_generate_command(data, save, subset="test", langs=("src", "tgt"), generate_args="") -> list:
    """The fairseq-generate command that scores SAVE/checkpoint_last.pt of `start_dense` as the rounds are, on
    `subset` (budgets are chosen on "valid"; the rounds report "test"); `langs` and `generate_args` as the rounds'
    (default: the demo's)."""
    from types import SimpleNamespace

    from .evaluate import generate_command
    from .spec import EvalOptions
    cfg = SimpleNamespace(task=SimpleNamespace(data=str(data), source_lang=langs[0], target_lang=langs[1]),
                          common=SimpleNamespace(cpu=True))
    return generate_command(cfg, Path(save) / "checkpoint_last.pt",
                            EvalOptions(test_subset=subset, generate_args=generate_args))


# plain fairseq-train's checkpoints hold objects torch's default weights_only loader refuses (the lottery's round
# checkpoints do not): the tools that load them get the loader of torch < 2.6
PLAIN_CHECKPOINTS_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def load_plain_checkpoints() -> None:
    """Let this process's fairseq tools (and their children) load plain fairseq-train checkpoints."""
    os.environ.update(PLAIN_CHECKPOINTS_ENV)


def dense_bleu(data, save, subset="test") -> dict:
    """fairseq-generate's result (`dense_generate_command`) on `subset` for the dense model of `start_dense` in
    `save`."""
    from .evaluate import run_generate

    load_plain_checkpoints()
    return run_generate(dense_generate_command(data, save, subset), str(Path(save) / f"generate_{subset}"))


def recorded_score(run_dir, k: int, subset: str, checkpoint=None) -> dict:
    """Round k's score, as the round recorded it (its fairseq-generate command, and its references if it had
    them), on another split and, given `checkpoint`, of another model of the same shapes: budgets are chosen on
    "valid" while the rounds report "test". Output under CHECKPOINT's folder (default: round k's)."""
    from .evaluate import scored_generate

    metrics = RunStore(run_dir).read_round(k).metrics
    cmd = shlex.split(metrics["generate_command"])
    cmd[cmd.index("--gen-subset") + 1] = subset
    if checkpoint is not None:
        cmd[cmd.index("--path") + 1] = str(checkpoint)
        load_plain_checkpoints()
    out = Path(cmd[cmd.index("--path") + 1]).parent / f"generate_{subset}"
    target = cmd[cmd.index("--target-lang") + 1] if "--target-lang" in cmd else None
    return scored_generate(cmd, str(out), metrics.get("references", ""), target)


def convergence(at_budget: float, at_twice: float):
    """(converged, verdict) of a dense model's BLEU at its budget and at twice that. A score that falls with more
    training is no plateau (a loss spike, an unstable schedule), nor is a model that learned nothing (BLEU < 1)."""
    change = at_twice - at_budget
    if max(at_budget, at_twice) < 1.0:
        return False, "NOT LEARNED (BLEU < 1 at both budgets)"
    if abs(change) <= CONVERGED_WITHIN:
        return True, f"CONVERGED (doubling the budget: {change:+.2f} BLEU)"
    return False, f"{'NOT CONVERGED' if change > 0 else 'UNSTABLE (the score fell)'} (doubling the budget: " \
                  f"{change:+.2f} BLEU, more than {CONVERGED_WITHIN})"


def schedule_args(max_update) -> list:
    """Train to update `max_update`, the learning rate reaching 0 there."""
    return ["--max-update", str(max_update), "--total-num-update", str(max_update)]


def lottery_config(rounds, rate, late_reset=LATE_RESET) -> LotteryConfig:
    """The winning ticket's lottery settings of the demo. Its lottery seed is given (0, not fairseq's --seed 1 that
    an unset one follows): the random ticket of the table README.md shows."""
    return LotteryConfig(rounds=rounds, rate=rate, reset=Reset.LATE, late_reset=late_reset, seed=0)


def train_args(rounds, rate, max_update, generate_args="", flags=None, late_reset=LATE_RESET,
               own_lottery_seed=True) -> list:
    """fairseq-train's arguments of the demo (after DATA): `flags` (default: the demo's model), the schedule to
    `max_update` and the lottery's flags; without `own_lottery_seed` the lottery seed follows fairseq's --seed."""
    cfg = lottery_config(rounds, rate, late_reset)
    flags = [*MODEL, *COMMON] if flags is None else flags
    seed = ["--lottery-seed", str(cfg.seed)] if own_lottery_seed else []
    return [*flags, *schedule_args(max_update), "--lottery-prune", "--lottery-rounds", str(cfg.rounds),
            "--lottery-rate", str(cfg.rate), "--lottery-reset", str(cfg.reset), "--lottery-late-reset",
            cfg.late_reset, *seed, "--lottery-eval-bleu", f"--lottery-generate-args={generate_args}"]


def pair_flags(pair, rounds: int, rate: float, max_update: int, lang: str = ""):
    """(model flags, lottery flags) of the demo's Transformer on a real pair folder OUT/en-X of `lth data catalogs`
    (X: `lang`, or read from the folder, which must then exist): its languages, the schedule to `max_update`, the
    late reset catalogs.LATE_RESET, and each round scored by sacreBLEU and chrF on detokenized beam search
    (catalogs.GENERATE_ARGS) against the raw references. The lottery seed follows --seed: another --seed is
    another seed of the experiment."""
    from . import catalogs

    pair = Path(pair)
    model = [*MODEL, *COMMON, "--source-lang", catalogs.SOURCE_LANG, "--target-lang",
             lang or catalogs.pair_target(pair)]
    lottery = train_args(rounds, rate, max_update, catalogs.GENERATE_ARGS, flags=[],
                         late_reset=catalogs.LATE_RESET, own_lottery_seed=False)
    return model, [*lottery, "--lottery-references", str(pair / "raw")]


def train_command_line(out, lang: str) -> str:
    """A complete fairseq-train command for the pair en-LANG of `lth data catalogs`'s OUT, as a shell line
    (`pair_flags` at catalogs.TRANSFORMER_BUDGET updates per round). Its runs go outside OUT, which holds only the
    builder's files."""
    from . import catalogs

    pair = Path(out) / f"{catalogs.SOURCE_LANG}-{lang}"
    model, lottery = pair_flags(pair, DEFAULTS["rounds"], DEFAULTS["rate"], catalogs.TRANSFORMER_BUDGET, lang)
    args = [*model, *lottery, "--save-dir", f"lth_output/{pair.name}"]

    def quote(arg: str) -> str:
        name, eq, value = arg.partition("=")
        return f"{name}={shlex.quote(value)}" if eq and name.startswith("--") else shlex.quote(arg)

    return " ".join(["fairseq-train", shlex.quote(str(pair)), '--user-dir "$(lth fairseq-user-dir)"',
                     *map(quote, args)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    a = p.parse_args(argv)
    run_demo(a.out, a.rounds, a.rate, a.max_update, a.seed, generate_args=a.generate_args)


def add_arguments(p) -> None:
    """The demo's flags, shared by `lth demo` and `python -m fairseq_ext.demo`."""
    p.add_argument("--out", default="lth_output/demo", help="folder of the data, runs and report")
    p.add_argument("--rounds", type=int, default=DEFAULTS["rounds"], help="pruned rounds after the dense one")
    p.add_argument("--rate", type=float, default=DEFAULTS["rate"],
                   help="fraction of survivors pruned per round (paper: 0.2; a higher rate reaches high sparsity "
                        "in few rounds)")
    p.add_argument("--max-update", type=int, default=DEFAULTS["max_update"],
                   help="updates per round (check convergence with benchmarks/bench_demo_convergence.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated corpus")
    p.add_argument("--generate-args", default="", metavar="'OPTIONS'",
                   help="fairseq-generate options for BLEU in one string, e.g. --generate-args='--beam 4 "
                        "--lenpen 0.6' (default: fairseq-generate's own defaults)")


if __name__ == "__main__":
    main()
