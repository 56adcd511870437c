"""`lth status RUN_DIR`: one line per round of a run (and of its random tickets, when given)."""
from pathlib import Path
from typing import List, Optional

from .store import RunStore, lock_holder


def _updates(record: Optional[dict], end: Optional[int] = None) -> str:
    """'j-T' from a round's start point and its last (or planned) update, e.g. '136-816'."""
    if not record or not record.get("start") or record["start"].get("update") is None:
        return ""
    last = record.get("end_update")
    if last is None:
        last = (record.get("end") or {}).get("update", end)
    return f"{record['start']['update']}-{last if last is not None else '?'}"


def round_rows(store: RunStore) -> List[dict]:
    """Per round: state "done", "pending", "mask ready", "in progress" (a live process holds the run) or
    "interrupted" (started, but no live process holds the run: killed or crashed; rerun the command), and
    `updates`: the updates it trains, 'j-T' (from its start point j to the end of the schedule)."""
    running = lock_holder(store.path) is not None
    cfg = store.config.get("lottery", {})
    ticket = cfg.get("ticket", "?")
    first = 1 if ticket == "random" else 0
    rows = []
    for k in range(first, int(cfg.get("rounds", 0)) + 1):
        rate = float(cfg.get("rate", 0.2))
        row = {"round": k, "ticket": ticket, "fraction_pruned": 1 - (1 - rate) ** k, "metric": None,
               "value": None, "state": "pending", "updates": ""}
        started = store.read_started(k)
        if store.round_done(k):
            m = store.read_metrics(k)
            row.update(fraction_pruned=m["fraction_pruned"], metric=m["primary"],
                       value=m["metrics"].get(m["primary"]), state="done", updates=_updates(m))
        elif (k == first or store.round_done(k - 1)) and (started or store.has_snapshot("init")):
            # a random ticket's masks are its winning run's: its running round is told by its start record
            row["state"] = "in progress" if running else "interrupted"
            row["updates"] = _updates(started)
        elif store.has_mask(k):
            row["state"] = "mask ready"
        rows.append(row)
    return rows


def primary_metric(store: RunStore) -> Optional[str]:
    """The metric a run reports, from its finished rounds or, for a random ticket with none yet, from its
    winning run's."""
    for k in store.rounds_on_disk():
        if store.round_done(k):
            return store.read_metrics(k)["primary"]
    source = store.config.get("lottery", {}).get("masks_from")
    if source and (Path(source) / "config.json").is_file():
        return primary_metric(RunStore(Path(source)))
    return None


def status_table(paths) -> str:
    """Rounds of every given run, winning and random side by side when both are given."""
    by_round = {}
    metric = None
    tickets = []
    for path in paths:
        store = RunStore(Path(path))
        ticket = store.config.get("lottery", {}).get("ticket", "?")
        tickets.append(ticket)
        for row in round_rows(store):
            by_round.setdefault(row["round"], {})[ticket] = row
        metric = metric or primary_metric(store)
    lines = [f"{'round':>5}  {'pruned':>7}  " + "  ".join(
        f"{t + ' ' + (metric or '(no round finished)'):>24}  {'updates':>13}  {'state':>11}" for t in tickets)]
    for k in sorted(by_round):
        rows = by_round[k]
        frac = next(iter(rows.values()))["fraction_pruned"]
        cells = []
        for t in tickets:
            r = rows.get(t)
            val = "" if r is None or r["value"] is None else f"{r['value']:.4f}"
            state = "-" if r is None else r["state"]
            cells.append(f"{val:>24}  {'' if r is None else r['updates']:>13}  {state:>11}")
        lines.append(f"{k:>5}  {100 * frac:>6.1f}%  " + "  ".join(cells))
    return "\n".join(lines)
