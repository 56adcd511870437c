"""`lth status SWEEP_DIR` (every job's rounds, state, requeues, retries used of its budget and SLURM's word on it,
from one sacct call) and
the run directories `lth report SWEEP_DIR` draws."""
import time
from pathlib import Path
from typing import List, Tuple

from ..store import RunStore
from . import accounting
from .config import Job
from .retries import DEFAULT_BUDGET
from .state import SweepDir, failure, job_state, slurm_ids
from .vocabulary import Executor, JobState


def sweep_jobs(path) -> Tuple[SweepDir, List[Job], dict]:
    """The jobs of the sweep in `path` as the sweep stored them."""
    sd = SweepDir(path)
    return sd, sd.jobs(), sd.read()["data"]


def states(path):
    """(jobs, their states): SLURM asked once for all of them."""
    sd, jobs, data = sweep_jobs(path)
    files = [sd.read_state(j) for j in jobs]
    ids = slurm_ids(files) + [f["job_id"] for f in files if f.get("executor") == Executor.SLURM and f.get("job_id")]
    records = accounting.query(ids)
    return jobs, [job_state(j, sd, data.get("rounds"), records) for j in jobs]


def status_table(path, attempts: bool = False) -> str:
    jobs, all_states = states(path)
    slurm = any(s["scheduler"] is not None for s in all_states)
    budget = sweep_jobs(path)[2].get("retries", DEFAULT_BUDGET)
    rows = []
    for j, s in zip(jobs, all_states):
        metric = _last_metric(j.run_dir)
        note = f"{failure(s)}, log {s['log']}" if s["state"] == JobState.FAILED else ""
        if j.dense_from:
            note = "; ".join(x for x in (f"reuses round 0 of {j.dense_from}", note) if x)
        if slurm:
            note = "; ".join(x for x in (f"SLURM {s['job_id']}: {s['scheduler']}" if s["scheduler"] else "", note)
                             if x)
        rows.append((j.name, s["state"], f"{s['done']}/{s['total'] if s['total'] is not None else '?'}",
                     str(s["requeues"]), f"{s['retries']}/{budget}", metric, note))
    w = max(len(r[0]) for r in rows)
    lines = [f"{'job':<{w}}  {'state':<11}  {'rounds':>6}  {'requeues':>8}  {'retries':>7}  "
             f"{'last round (metric)':<30}  note"]
    lines += [f"{a:<{w}}  {b:<11}  {c:>6}  {d:>8}  {r:>7}  {e:<30}  {f}".rstrip() for a, b, c, d, r, e, f in rows]
    counts = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    lines.append(f"{len(rows)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if attempts:
        lines += ["", attempts_table(jobs, all_states)]
    return "\n".join(lines)


def attempts_table(jobs, all_states) -> str:
    """Every attempt of every job: where and when it ran, how it ended, the pause before the next attempt and
    the training the next attempt had to redo (since the last finished round or checkpoint)."""
    lines = [f"{'job':<30}  {'#':>2}  {'job id':>8}  {'host':<12}  {'started':<8}  {'ran s':>6}  "
             f"{'redone s':>8}  {'wait s':>6}  ended"]
    for j, s in zip(jobs, all_states):
        atts = s["attempts"]
        for i, a in enumerate(atts):
            started, ended = a.get("started"), a.get("ended")
            ran = f"{ended - started:.1f}" if started and ended else "-"
            nxt = atts[i + 1].get("started") if i + 1 < len(atts) else None
            wait = f"{nxt - ended:.1f}" if nxt and ended else "-"
            redone = a.get("redone_s")
            lines.append(f"{j.name:<30}  {i + 1:>2}  {a.get('job_id', ''):>8}  {a.get('host', ''):<12}  "
                         f"{time.strftime('%H:%M:%S', time.localtime(started)) if started else '-':<8}  "
                         f"{ran:>6}  {'-' if redone is None else redone:>8}  {wait:>6}  {a.get('end', 'running')}")
    return "\n".join(lines)


def _last_metric(run_dir: Path) -> str:
    try:
        rec = RunStore.view(run_dir).last_record()
        if rec is None:
            return "-"
        return f"round {rec.round}: {rec.primary}={float(rec.value):.4g}"
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def report_dirs(path) -> Tuple[List[Path], List[str]]:
    """Run directories of the sweep with at least one finished round, and notes naming what is missing."""
    jobs, all_states = states(path)
    dirs, notes = [], []
    for j, s in zip(jobs, all_states):
        if s["done"] == 0:
            notes.append(f"missing run {j.name}: no round finished ({s['state']})")
            continue
        dirs.append(j.run_dir)
        if s["state"] != JobState.DONE:
            notes.append(f"partial run {j.name}: {s['done']}/{s['total']} rounds finished ({s['state']})")
    return dirs, notes
