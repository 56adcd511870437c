"""Per-round metrics of a fairseq lottery round.

* valid: last and best valid loss / perplexity from fairseq's own validations during the round (base-2
  losses as fairseq reports them; ppl = 2**nll_loss when the criterion reports nll_loss);
* language modeling: test-set loss and perplexity computed exactly as `fairseq-eval-lm` does (its
  `eval_lm` function over `task.eval_lm_dataloader`), with `test_log_ppl` = ln(perplexity), the paper's
  "log perplexity";
* translation (--lottery-eval-bleu): `bleu` is what fairseq-generate itself prints for the round's checkpoint,
  run as a subprocess with its own defaults plus --lottery-generate-args; the command is recorded
  (`generate_command`) so that running it by hand reproduces the score. With --lottery-references, `bleu` and
  `chrf` are sacreBLEU's on the detokenized output against raw references, with their signatures.
"""
import contextlib
import glob
import io
import math
import os
import re
import shlex
from typing import Dict, List, Optional, Tuple

import torch

from . import import_fairseq_quietly

import_fairseq_quietly()
from fairseq import checkpoint_utils, utils  # noqa: E402

from .spec import EvalOptions, LotterySpec

LN2 = math.log(2)


def precheck(cfg, spec: LotterySpec) -> None:
    """Fail before training when the evaluation could not run at the end of round 0."""
    from lth_plugins.errors import LotteryConfigError

    data = str(getattr(cfg.task, "data", "") or "")
    subset = spec.evaluation.test_subset
    refs = spec.evaluation.references
    if refs and spec.evaluation.eval_bleu:
        target = reference_path(refs, subset, getattr(cfg.task, "target_lang", None))
        if not os.path.isfile(target):
            raise LotteryConfigError(f"--lottery-references {refs}: no {target} (the raw references of the "
                                     f"'{subset}' split, one sentence per line)")
    if spec.wants_test_split and data:
        paths = [p for d in data.split(os.pathsep) for p in glob.glob(os.path.join(d, f"{subset}*.idx"))]
        if not paths:
            raise LotteryConfigError(
                f"no '{subset}' split in {data}: the round evaluation needs it (binarize it with "
                f"fairseq-preprocess --testpref, choose another with --lottery-test-subset"
                + (", or pass --lottery-no-test)" if spec.task == "language_modeling" else ")"))


def _valid_metrics(curve: List[dict]) -> Dict[str, float]:
    out = {}
    if not curve:
        return out
    last = curve[-1]
    for key in ("valid_loss", "valid_nll_loss", "valid_ppl", "valid_bleu"):
        if key in last:
            out[key] = last[key]
    for key, better in (("valid_loss", min), ("valid_nll_loss", min), ("valid_ppl", min), ("valid_bleu", max)):
        vals = [p[key] for p in curve if key in p]
        if vals:
            out["best_" + key] = better(vals)
    out["num_updates"] = last["num_updates"]
    return out


def round_metrics(ctx, spec: LotterySpec, is_master: bool) -> Tuple[dict, str, bool]:
    """(the metrics of the round `ctx` trained, its primary metric, whether higher is better)."""
    primary, higher = spec.primary_metric
    if not is_master:  # only rank 0 evaluates and writes; the other ranks only prune
        return {primary: float("nan")}, primary, higher
    trainer = ctx.trainer
    ev = spec.evaluation
    metrics = _valid_metrics(ctx.curve)
    metrics["num_updates"] = trainer.get_num_updates()
    model = trainer._model
    was_training = model.training
    model.eval()
    try:
        if spec.lm_test:
            metrics.update(lm_test_metrics(ctx.cfg, trainer.task, model, ev.test_subset, ev.lm_context_window))
        if ev.eval_bleu:
            metrics.update(bleu_metrics(ctx.cfg, ev))
    finally:
        model.train(was_training)
    if primary not in metrics:
        raise RuntimeError(f"round metrics lack {primary!r}: {metrics}")
    return metrics, primary, higher


# --- language modeling: as fairseq-eval-lm ---------------------------------------------------------------
@torch.no_grad()
def lm_test_metrics(cfg, task, model, subset: str = "test", context_window: int = 0) -> Dict[str, float]:
    from fairseq_cli.eval_lm import eval_lm

    task.load_dataset(subset)
    dataset = task.dataset(subset)
    itr = task.eval_lm_dataloader(
        dataset=dataset,
        max_tokens=cfg.dataset.max_tokens or 36000,
        batch_size=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(model.max_positions()),
        num_shards=1, shard_id=0, num_workers=0,
        data_buffer_size=cfg.dataset.data_buffer_size,
        context_window=context_window,
    )
    res = eval_lm(models=[model], source_dictionary=task.source_dictionary, batch_iterator=itr,
                  target_dictionary=task.target_dictionary,
                  remove_bos_token=getattr(cfg.task, "add_bos_token", False))
    loss = float(res["loss"])
    return {"test_loss": loss, "test_ppl": float(res["perplexity"]), "test_log_ppl": loss * LN2, "test_subset": subset}


# --- translation: fairseq-generate itself ------------------------------------------------------------------
_CKPT_RE = re.compile(r"checkpoint(?:(\d+)|_(\d+)_(\d+))\.pt$")
OWN_OPTIONS = ("--path", "--gen-subset", "--results-path", "--task")  # set by the round evaluation itself
SCORERS = ("bleu", "sacrebleu")


def _saved_checkpoints(save_dir: str) -> List[str]:
    found = []
    for path in glob.glob(os.path.join(save_dir, "checkpoint*.pt")):
        m = _CKPT_RE.search(os.path.basename(path))
        if m:
            epoch = int(m.group(1) or m.group(2))
            upd = int(m.group(3) or 0)
            found.append(((epoch, upd), path))
    return [p for _, p in sorted(found)]


@torch.no_grad()
def write_averaged_checkpoint(save_dir: str, n: int) -> Tuple[Optional[str], int]:
    """Average the round's last `n` epoch/update checkpoints into SAVE_DIR/checkpoint_avgN.pt, as fairseq's
    scripts/average_checkpoints.py does (pruned weights are zero in every checkpoint, so they stay zero)."""
    from lth_plugins.atomic import atomic_torch_save

    paths = _saved_checkpoints(save_dir)[-n:]
    if len(paths) < 2:
        return None, len(paths)
    total, state = None, None
    for p in paths:
        state = checkpoint_utils.load_checkpoint_to_cpu(p)
        model = state["model"]
        if total is None:
            total = {k: v.clone().double() if v.is_floating_point() else v.clone() for k, v in model.items()}
        else:
            for k, v in model.items():
                if v.is_floating_point():
                    total[k] += v.double()
    state["model"] = {k: (v / len(paths)).to(state["model"][k].dtype) if v.is_floating_point() else v
                      for k, v in total.items()}
    state["last_optimizer_state"] = None
    out = os.path.join(save_dir, f"checkpoint_avg{n}.pt")
    atomic_torch_save(out, state)
    return out, len(paths)


def parse_generate_args(text: Optional[str]) -> List[str]:
    """The user's fairseq-generate options (one string, shell syntax), checked by fairseq-generate's own parser
    before any training. Raises LotteryConfigError naming the problem."""
    from lth_plugins.errors import LotteryConfigError

    try:
        extra = shlex.split(text or "")
    except ValueError as e:
        raise LotteryConfigError(f"--lottery-generate-args {text!r}: {e}") from None
    for opt in extra:
        name = opt.split("=", 1)[0]
        if name in OWN_OPTIONS:
            raise LotteryConfigError(
                f"--lottery-generate-args: {name} is set by the round evaluation (the round's checkpoint, "
                f"--lottery-test-subset, --task of the training); leave it out")
    from fairseq import options

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
            ns, rest = options.parse_args_and_arch(options.get_generation_parser(default_task="translation"),
                                                   ["DATA", *extra], parse_known=True)
    except SystemExit:
        msg = err.getvalue().strip().splitlines()
        raise LotteryConfigError(f"--lottery-generate-args {text!r}: fairseq-generate refuses it: "
                                 f"{msg[-1].split('error: ', 1)[-1] if msg else 'bad options'}") from None
    if rest:
        raise LotteryConfigError(f"--lottery-generate-args: fairseq-generate does not know {' '.join(rest)}")
    if getattr(ns, "scoring", "bleu") not in SCORERS:
        raise LotteryConfigError(f"--lottery-generate-args: --scoring {ns.scoring} is not BLEU; the round "
                                 f"evaluation records BLEU (choose one of {', '.join(SCORERS)})")
    return extra


def rescoring_note(spec: LotterySpec) -> Optional[str]:
    """What a rerun that scores rounds otherwise than the run's finished rounds were scored (another value of a
    scoring option, spec.SCORING_OPTIONS, that this run's evaluation uses) does to them (None: nothing, no such
    value changed or no round is scored yet)."""
    from lth_plugins.hparams import flag
    from lth_plugins.store import RunStore

    from .spec import DEST_PREFIX, SCORING_OPTIONS

    store = RunStore.view(spec.run_dir)
    stored = store.config.get("settings") or {}
    done = store.finished_rounds()
    lm_only, bleu_only = ("lm_context_window",), ("generate_args", "references", "bleu_average_last")
    used = [DEST_PREFIX + name for name in SCORING_OPTIONS
            if (spec.evaluation.eval_bleu and name not in lm_only) or (spec.lm_test and name not in bleu_only)]
    changed = [k for k in used if k in stored and stored[k] != spec.settings.get(k)]
    if not done or not changed:
        return None
    rounds = f"round {done[0]}" if len(done) == 1 else f"rounds {done[0]}-{done[-1]}"
    metric = "BLEU" if spec.evaluation.eval_bleu else "test perplexity"
    before = ", ".join(f"{flag(k, '--')} {stored[k]!r}" for k in changed)
    now = ", ".join(f"{flag(k, '--')} {spec.settings.get(k)!r}" for k in changed)
    how = ("run the fairseq-generate command its round_KK/metrics.json records (generate_command) with the new "
           "options" if spec.evaluation.eval_bleu else
           f"run fairseq-eval-lm --path {os.path.join(spec.save_dir, 'round_KK', 'checkpoint_last.pt')} "
           f"--gen-subset SPLIT")
    return (f"{rounds} of {spec.run_dir} keep the {metric} scored with {before}; the rounds still to train are "
            f"scored with {now}. To rescore a finished round, {how}")


def generate_command(cfg, checkpoint: str, ev: Optional[EvalOptions] = None) -> List[str]:
    """The fairseq-generate command line that scores `checkpoint` as this round's evaluation does (`ev`: the
    round evaluation's options; default: fairseq-generate's own settings on the test split)."""
    ev = ev or EvalOptions()
    cmd = ["fairseq-generate", str(cfg.task.data), "--path", str(checkpoint), "--task", "translation",
           "--gen-subset", ev.test_subset]
    for flag, key in (("--source-lang", "source_lang"), ("--target-lang", "target_lang")):
        value = getattr(cfg.task, key, None)
        if value:
            cmd += [flag, str(value)]
    if getattr(cfg.common, "cpu", False):
        cmd.append("--cpu")
    return cmd + parse_generate_args(ev.generate_args)


_RESULT_RE = re.compile(r"^Generate \S+ with beam=\d+: (\w+) = ([-\d.]+)(.*)$", re.M)


def run_generate(cmd: List[str], out_dir: str) -> Dict[str, object]:
    """Run `cmd` (a fairseq-generate command line) with this interpreter; its output goes to
    OUT_DIR/generate-SUBSET.txt (fairseq-generate --results-path) and OUT_DIR/generate.log."""
    import subprocess
    import sys

    from .requeue import shielded_children

    os.makedirs(out_dir, exist_ok=True)
    log_path = os.path.join(out_dir, "generate.log")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    with open(log_path, "w") as log:
        with shielded_children():  # SLURM's warning requeues the job; this rank ends the evaluation then
            proc = subprocess.Popen([sys.executable, "-m", "fairseq_cli.generate", *cmd[1:], "--results-path",
                                     out_dir], env=env, stdout=log, stderr=subprocess.STDOUT)
        with proc:
            try:
                proc.wait()
            except BaseException:
                proc.kill()
                raise
    subset = cmd[cmd.index("--gen-subset") + 1]
    result_path = os.path.join(out_dir, f"generate-{subset}.txt")
    text = open(result_path).read() if os.path.isfile(result_path) else ""
    m = _RESULT_RE.search(text)
    if proc.returncode != 0 or m is None:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"fairseq-generate failed (exit {proc.returncode}; log {log_path}):\n{tail}")
    n = len(re.findall(r"^H-\d+\t", text, re.M))
    return {"bleu": float(m.group(2)), "bleu_result": f"{m.group(1)} = {m.group(2)}{m.group(3)}",
            "bleu_sentences": n, "generate_command": shlex.join(cmd)}


def reference_path(references_dir: str, subset: str, target_lang: Optional[str]) -> str:
    """The raw references of `subset`: REFERENCES_DIR/SUBSET.TARGET_LANG."""
    return os.path.join(references_dir, f"{subset}.{target_lang}")


def scored_generate(cmd: List[str], out_dir: str, references_dir: str = "", target_lang: Optional[str] = None):
    """`run_generate`; with `references_dir`, BLEU and chrF by sacreBLEU on the detokenized output against the raw
    references (`catalogs.score`), fairseq-generate's own BLEU kept as `fairseq_bleu`."""
    out = run_generate(cmd, out_dir)
    if references_dir:
        from .catalogs import generated_hypotheses, score

        subset = cmd[cmd.index("--gen-subset") + 1]
        with open(reference_path(references_dir, subset, target_lang)) as f:
            refs = f.read().splitlines()
        hyps = generated_hypotheses(os.path.join(out_dir, f"generate-{subset}.txt"), len(refs))
        out["fairseq_bleu"] = out["bleu"]
        out.update(score(hyps, refs, target_lang), references=os.path.abspath(references_dir),
                   empty_hypotheses=sum(1 for h in hyps if not h))
    return out


def bleu_metrics(cfg, ev: EvalOptions) -> Dict[str, object]:
    """BLEU of the round's final checkpoint (or the average of its last checkpoints), scored by
    fairseq-generate; records the equivalent command."""
    save_dir = cfg.checkpoint.save_dir
    checkpoint = os.path.join(save_dir, "checkpoint_last.pt")
    out = {}
    n_avg = ev.bleu_average_last
    if n_avg > 1:
        avg, used = write_averaged_checkpoint(save_dir, n_avg)
        if avg is not None:
            checkpoint = avg
            out["bleu_averaged_checkpoints"] = used
    if not os.path.isfile(checkpoint):
        raise RuntimeError(f"no round checkpoint to score: {checkpoint}")
    out.update(scored_generate(generate_command(cfg, checkpoint, ev), os.path.join(save_dir, "generate"),
                               ev.references, getattr(cfg.task, "target_lang", None)))
    return out
