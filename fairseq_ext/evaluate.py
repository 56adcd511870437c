"""Per-round metrics of a fairseq lottery round.

* valid: last and best valid loss / perplexity from fairseq's own validations during the round (base-2
  losses as fairseq reports them; ppl = 2**nll_loss when the criterion reports nll_loss);
* language modeling: test-set loss and perplexity computed exactly as `fairseq-eval-lm` does (its
  `eval_lm` function over `task.eval_lm_dataloader`), with `test_log_ppl` = ln(perplexity), the paper's
  "log perplexity";
* translation (--lottery-eval-bleu): beam search on the test split, scored with sacrebleu's API both on
  detokenized text (`bleu`, sacrebleu's own tokenizer, default 13a) and on the tokenized text as
  multi-bleu.perl scores it (`bleu_tok`: case-sensitive, whitespace tokens, no further tokenization).
"""
import copy
import glob
import math
import os
import re
from typing import Dict, List, Optional, Tuple

import torch

from fairseq import checkpoint_utils, utils

LN2 = math.log(2)


def precheck(cfg, spec) -> None:
    """Fail before training when the evaluation could not run at the end of round 0."""
    from lth_plugins.errors import LotteryConfigError

    ev = spec["eval"]
    data = str(getattr(cfg.task, "data", "") or "")
    subset = ev.get("test_subset", "test")
    wants_test = ev.get("eval_bleu") or (spec["task"] == "language_modeling" and not ev.get("no_test"))
    if wants_test and data:
        paths = [p for d in data.split(os.pathsep) for p in glob.glob(os.path.join(d, f"{subset}*.idx"))]
        if not paths:
            raise LotteryConfigError(
                f"no '{subset}' split in {data}: the round evaluation needs it (binarize it with "
                f"fairseq-preprocess --testpref, choose another with --lottery-test-subset"
                + (", or pass --lottery-no-test)" if spec["task"] == "language_modeling" else ")"))


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


def round_metrics(ctx, spec, is_master: bool) -> Tuple[dict, str, bool]:
    ev = spec["eval"]
    task_name = spec["task"]
    if ev.get("eval_bleu"):
        primary, higher = "bleu_tok", True
    elif task_name == "language_modeling" and not ev.get("no_test"):
        primary, higher = "test_log_ppl", False
    else:
        primary, higher = "valid_loss", False
    if not is_master:  # only rank 0 evaluates and writes; the other ranks only prune
        return {primary: float("nan")}, primary, higher
    trainer = ctx.trainer
    metrics = _valid_metrics(ctx.curve)
    metrics["num_updates"] = trainer.get_num_updates()
    model = trainer._model
    was_training = model.training
    model.eval()
    try:
        if task_name == "language_modeling" and not ev.get("no_test"):
            metrics.update(lm_test_metrics(ctx.cfg, trainer.task, model, ev.get("test_subset", "test"),
                                           ev.get("lm_context_window", 0)))
        if ev.get("eval_bleu"):
            models = [model]
            n_avg = ev.get("bleu_average_last", 0)
            if n_avg and n_avg > 1:
                avg, used = averaged_model(model, ctx.cfg.checkpoint.save_dir, n_avg)
                if avg is not None:
                    models = [avg]
                    metrics["bleu_averaged_checkpoints"] = used
            metrics.update(bleu_metrics(ctx.cfg, trainer.task, models, ev))
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
    return {"test_loss": loss, "test_ppl": float(res["perplexity"]), "test_log_ppl": loss * LN2}


# --- translation: beam search + sacrebleu -----------------------------------------------------------------
_CKPT_RE = re.compile(r"checkpoint(?:(\d+)|_(\d+)_(\d+))\.pt$")


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
def averaged_model(model, save_dir: str, n: int):
    """The average of the round's last `n` epoch/update checkpoints (as fairseq's average_checkpoints.py);
    pruned weights are zero in every checkpoint, so they stay zero."""
    paths = _saved_checkpoints(save_dir)[-n:]
    if len(paths) < 2:
        return None, len(paths)
    total = None
    for p in paths:
        state = checkpoint_utils.load_checkpoint_to_cpu(p)["model"]
        if total is None:
            total = {k: v.clone().double() if v.is_floating_point() else v.clone() for k, v in state.items()}
        else:
            for k, v in state.items():
                if v.is_floating_point():
                    total[k] += v.double()
    avg = copy.deepcopy(model)
    ref = model.state_dict()
    avg.load_state_dict({k: (v / len(paths)).to(ref[k].dtype) if v.is_floating_point() else v
                         for k, v in total.items()}, strict=True)
    avg.eval()
    return avg, len(paths)


def compound_split(line: str) -> str:
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line)


def bleu_scores(hyps: List[str], refs: List[str], tokenize: str = "13a", detok: str = "space",
                target_lang: Optional[str] = None, split_compounds: bool = False) -> Dict[str, float]:
    """`bleu`: sacrebleu on detokenized text; `bleu_tok`: multi-bleu.perl style on the tokenized text."""
    import sacrebleu

    tok_h = [compound_split(h) for h in hyps] if split_compounds else hyps
    tok_r = [compound_split(r) for r in refs] if split_compounds else refs
    tok_metric = sacrebleu.metrics.BLEU(tokenize="none", force=True)
    bleu_tok = tok_metric.corpus_score(tok_h, [tok_r])
    if detok == "moses":
        from sacremoses import MosesDetokenizer
        md = MosesDetokenizer(lang=target_lang or "en")
        d_h = [md.detokenize(h.split()) for h in hyps]
        d_r = [md.detokenize(r.split()) for r in refs]
    else:
        d_h, d_r = hyps, refs
    metric = sacrebleu.metrics.BLEU(tokenize=tokenize)
    bleu = metric.corpus_score(d_h, [d_r])
    return {"bleu": float(bleu.score), "bleu_tok": float(bleu_tok.score),
            "bleu_signature": str(metric.get_signature()), "bleu_tok_signature": str(tok_metric.get_signature()),
            "bleu_bp": float(bleu.bp), "bleu_sys_len": int(bleu.sys_len), "bleu_ref_len": int(bleu.ref_len)}


@torch.no_grad()
def translate_test(cfg, task, models, ev) -> Tuple[List[str], List[str]]:
    from fairseq.dataclass.configs import GenerationConfig

    subset = ev.get("test_subset", "test")
    task.load_dataset(subset)
    gen_cfg = GenerationConfig(beam=ev.get("bleu_beam", 5), lenpen=ev.get("bleu_lenpen", 1.0),
                               max_len_a=ev.get("bleu_max_len_a", 1.2), max_len_b=ev.get("bleu_max_len_b", 10))
    generator = task.build_generator(models, gen_cfg)
    tgt_dict = task.target_dictionary
    remove_bpe = ev.get("bleu_remove_bpe")
    strip = generator.symbols_to_strip_from_output if hasattr(generator, "symbols_to_strip_from_output") \
        else {tgt_dict.eos()}
    itr = task.get_batch_iterator(
        dataset=task.dataset(subset),
        max_tokens=ev.get("bleu_max_tokens") or cfg.dataset.max_tokens or 4000,
        max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), *[m.max_positions() for m in models]),
        ignore_invalid_inputs=True, required_batch_size_multiple=1, seed=1, num_shards=1, shard_id=0,
        num_workers=0,
    ).next_epoch_itr(shuffle=False)
    device = next(models[0].parameters()).device
    limit = ev.get("bleu_max_sentences") or 0
    out = {}
    for sample in itr:
        sample = utils.move_to_cuda(sample, device=device) if device.type == "cuda" else sample
        if "net_input" not in sample:
            continue
        hypos = task.inference_step(generator, models, sample)
        for i, sid in enumerate(sample["id"].tolist()):
            if limit and sid >= limit:
                continue
            target = utils.strip_pad(sample["target"][i], tgt_dict.pad()).int().cpu()
            ref = tgt_dict.string(target, remove_bpe, escape_unk=True, extra_symbols_to_ignore=strip)
            hyp = tgt_dict.string(hypos[i][0]["tokens"].int().cpu(), remove_bpe, extra_symbols_to_ignore=strip)
            out[sid] = (hyp, ref)
    ids = sorted(out)
    return [out[i][0] for i in ids], [out[i][1] for i in ids]


def bleu_metrics(cfg, task, models, ev) -> Dict[str, float]:
    hyps, refs = translate_test(cfg, task, models, ev)
    scores = bleu_scores(hyps, refs, tokenize=ev.get("bleu_tokenize", "13a"), detok=ev.get("bleu_detok", "space"),
                         target_lang=getattr(cfg.task, "target_lang", None),
                         split_compounds=ev.get("bleu_compound_split", False))
    scores["bleu_sentences"] = len(hyps)
    return scores
