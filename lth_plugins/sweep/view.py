"""`lth status SWEEP_DIR` (every job's rounds and state) and the run directories `lth report SWEEP_DIR` draws."""
from pathlib import Path
from typing import List, Tuple

from ..store import RunStore
from .config import Job
from .state import SweepDir, failure, job_state


def sweep_jobs(path) -> Tuple[SweepDir, List[Job], dict]:
    """The jobs of the sweep in `path` as the sweep stored them."""
    sd = SweepDir(path)
    return sd, sd.jobs(), sd.read()["data"]


def status_table(path) -> str:
    sd, jobs, data = sweep_jobs(path)
    rows = []
    for j in jobs:
        s = job_state(j, sd, data.get("rounds"))
        metric = _last_metric(j.run_dir)
        note = f"{failure(s)}, log {s['log']}" if s["state"] == "failed" else ""
        rows.append((j.name, s["state"], f"{s['done']}/{s['total'] if s['total'] is not None else '?'}",
                     metric, note))
    w = max(len(r[0]) for r in rows)
    lines = [f"{'job':<{w}}  {'state':<11}  {'rounds':>6}  {'last round (metric)':<30}  note"]
    lines += [f"{a:<{w}}  {b:<11}  {c:>6}  {d:<30}  {e}".rstrip() for a, b, c, d, e in rows]
    counts = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    lines.append(f"{len(rows)} jobs: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def _last_metric(run_dir: Path) -> str:
    try:
        rec = RunStore.view(run_dir).last_metrics()
        if rec is None:
            return "-"
        value = rec["metrics"][rec["primary"]]
        return f"round {rec['round']}: {rec['primary']}={float(value):.4g}"
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def report_dirs(path) -> Tuple[List[Path], List[str]]:
    """Run directories of the sweep with at least one finished round, and notes naming what is missing."""
    sd, jobs, data = sweep_jobs(path)
    dirs, notes = [], []
    for j in jobs:
        s = job_state(j, sd, data.get("rounds"))
        if s["done"] == 0:
            notes.append(f"missing run {j.name}: no round finished ({s['state']})")
            continue
        dirs.append(j.run_dir)
        if s["state"] != "done":
            notes.append(f"partial run {j.name}: {s['done']}/{s['total']} rounds finished ({s['state']})")
    return dirs, notes
