"""Per-round tables of runs, winning and random tickets side by side: `lth status RUN_DIR...` and the tables
adapters print (e.g. `lth demo`), all from one row model and one renderer."""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .hparams import Choice, Ticket, fraction_pruned
from .errors import LotteryError, RunStoreError
from .record import RoundRecord
from .store import RunStore, Snapshot


def _span(start: Optional[int], last: Optional[int]) -> str:
    """'j-T' from a round's start point and its last (or planned) update, e.g. '136-816'."""
    return "" if start is None else f"{start}-{last if last is not None else '?'}"


def updates_trained(record: RoundRecord) -> int:
    """Optimizer updates the round itself trained (a late-reset round starts its counter after the reset
    point)."""
    if record.updates is not None:
        return int(record.updates)
    return int(record.metrics["num_updates"]) - record.start_update


class RoundState(Choice):
    """Where a round of a run stands, as `lth status` shows it."""
    DONE = "done"                # recorded
    PENDING = "pending"          # not started, its mask not made yet
    MASK_READY = "mask ready"    # not started, its mask made
    IN_PROGRESS = "in progress"  # started, and a live process holds the run
    INTERRUPTED = "interrupted"  # started, but no live process holds the run (killed or crashed: rerun the command)


def _planned_rate(store: RunStore) -> float:
    """The rate a run's rounds prune at: a transferred ticket's masks are its source's, so its rate is theirs (its
    own when the source cannot be read)."""
    cfg = store.lottery
    if cfg.ticket is Ticket.TRANSFERRED:
        try:
            return RunStore(cfg.source_dir).lottery.rate
        except (LotteryError, OSError):
            pass
    return cfg.rate


def round_rows(store: RunStore) -> List[dict]:
    """Per round: its `state` (a RoundState), `updates` ('j-T', from its start point j to the end of the schedule)
    and, when done, its `record` (a RoundRecord)."""
    running = store.holder() is not None
    cfg = store.lottery
    first = cfg.first_round
    rate = _planned_rate(store)
    rows = []
    for k in range(first, cfg.rounds + 1):
        row = {"round": k, "ticket": str(cfg.ticket), "fraction_pruned": fraction_pruned(rate, k),
               "metric": None, "value": None, "state": RoundState.PENDING, "updates": "", "record": None}
        started = store.read_started(k)
        if store.round_done(k):
            m = store.read_round(k)
            row.update(fraction_pruned=m.fraction_pruned, metric=m.primary, record=m, value=m.value,
                       state=RoundState.DONE, updates=_span(m.start.get("update"), m.end_update))
        elif (k == first or store.round_done(k - 1)) and (started or store.has_snapshot(Snapshot.INIT)):
            # a random ticket's masks are its winning run's: its running round is told by its start record
            row["state"] = RoundState.IN_PROGRESS if running else RoundState.INTERRUPTED
            if started and started.get("start"):
                row["updates"] = _span(started["start"].get("update"), (started.get("end") or {}).get("update"))
        elif store.has_mask(k):
            row["state"] = RoundState.MASK_READY
        rows.append(row)
    return rows


def primary_metric(store: RunStore) -> Optional[str]:
    """The metric a run reports, from its finished rounds or, for a random ticket with none yet, from its
    winning run's."""
    last = store.last_record()
    if last is not None:
        return last.primary
    source = store.lottery.source_dir
    if source and (Path(source) / "config.json").is_file():
        return primary_metric(RunStore(Path(source)))
    return None


@dataclass
class Column:
    """One column of a round table: its title, width, and the text of a cell from the round's rows by ticket."""
    title: str
    width: int
    cell: Callable[[int, Dict[str, dict]], str]
    sep: str = " "   # what stands before it


def render(columns: List[Column], by_round: Dict[int, Dict[str, dict]]) -> str:
    """Right-aligned columns, one line per round."""
    def line(cells):
        return "".join((c.sep if i else "") + f"{text:>{c.width}}" for i, (c, text) in enumerate(zip(columns, cells)))

    lines = [line([c.title for c in columns])]
    lines += [line([c.cell(k, by_round[k]) for c in columns]) for k in sorted(by_round)]
    return "\n".join(lines)


def run_labels(paths) -> List[str]:
    """What names each run in a table: its directory's name (the path as given where two names are alike)."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def open_run(path) -> RunStore:
    """The store of a run directory; a path that does not exist is named as such."""
    if not Path(path).exists():
        raise RunStoreError(f"{path} does not exist")
    return RunStore(Path(path))


def rows_by_round(paths) -> Dict[str, object]:
    """{'by_round': {k: {label: row}}, 'labels': [run_labels of the paths], 'stores': [...], 'metric': name}."""
    by_round: Dict[int, Dict[str, dict]] = {}
    labels, stores, metric = run_labels(paths), [], None
    for label, path in zip(labels, paths):
        store = open_run(path)
        stores.append(store)
        for row in round_rows(store):
            by_round.setdefault(row["round"], {})[label] = row
        metric = metric or primary_metric(store)
    return {"by_round": by_round, "labels": labels, "stores": stores, "metric": metric}


def pruned_column(sep: str = "  ") -> Column:
    return Column("pruned", 7, lambda k, rows: f"{100 * next(iter(rows.values()))['fraction_pruned']:6.1f}%", sep)


def column_title(label: str, store: RunStore, metric: Optional[str]) -> str:
    """'RUN: TICKET METRIC', with the run a transferred ticket's masks come from."""
    cfg = store.lottery
    source = f" (from {Path(cfg.source_dir).name})" if cfg.ticket is Ticket.TRANSFERRED and cfg.source_dir else ""
    return f"{label}: {cfg.ticket} {metric or '(no round finished)'}{source}"


def status_table(paths) -> str:
    """Rounds of every given run side by side, each column named by its run."""
    t = rows_by_round(paths)
    columns = [Column("round", 5, lambda k, rows: str(k)), pruned_column()]
    for label, store in zip(t["labels"], t["stores"]):
        def value(k, rows, label=label):
            r = rows.get(label)
            return "" if r is None or r["value"] is None else f"{r['value']:.4f}"

        title = column_title(label, store, t["metric"])
        columns += [Column(title, max(24, len(title)), value, "  "),
                    Column("updates", 13, lambda k, rows, label=label: (rows.get(label) or {}).get("updates", ""),
                           "  "),
                    Column("state", 11, lambda k, rows, label=label: (rows.get(label) or {}).get("state", "-"),
                           "  ")]
    from .sweep.retries import describe
    notes = [f"{label}: SLURM {describe(path)}" for label, path in zip(t["labels"], paths) if describe(path)]
    notes += [f"{label}: {note}" for label, store in zip(t["labels"], t["stores"]) for note in [extension_note(store)]
              if note]
    return "\n".join([render(columns, t["by_round"]), *notes])


def extension_note(store: RunStore) -> str:
    """For a finished run that has made the mask of the round after its last: that raising `rounds` extends it."""
    n = store.lottery.rounds
    if not (store.round_done(n) and store.has_mask(n + 1)):
        return ""
    return (f"every round is finished; round {n + 1}'s mask ({100 * fraction_pruned(_planned_rate(store), n + 1):.1f}% "
            f"pruned) is made, so the same run with rounds {n + 1} or more extends it")


def run_attempts(path) -> str:
    """The attempts of the sweep job whose run directory is `path` (its rows of `lth status SWEEP_DIR --attempts`).
    Raises RunStoreError when no sweep ran it: attempts are what a sweep records of its jobs."""
    from .sweep.state import is_sweep_dir
    from .sweep.view import attempts_table, states

    run = open_run(path).path.resolve()
    sweep = next((d for d in run.parents if is_sweep_dir(d)), None)
    jobs = list(zip(*states(sweep))) if sweep is not None else []
    mine = [(job, state) for job, state in jobs if Path(job.run_dir).resolve() == run]
    if not mine:
        raise RunStoreError(f"--attempts shows the attempts of a sweep's jobs, and no sweep ran {path}: drop "
                            f"--attempts to see its rounds")
    return attempts_table(*zip(*mine))


def metric_columns(key: str, label: str, width: int, fmt: str, tickets=(Ticket.WINNING, Ticket.RANDOM),
                   sep: str = " | ") -> List[Column]:
    """One column per ticket with `key` of its finished rounds' metrics ('-' where the ticket has no such round,
    e.g. a random ticket's round 0, which is the winning run's dense round)."""
    def cell(k, rows, ticket):
        rec = (rows.get(str(ticket)) or {}).get("record")
        return "-" if rec is None else f"{rec.metrics.get(key, float('nan')):{fmt}}"

    return [Column(f"{ticket.short.upper()} {label}", width, lambda k, rows, t=ticket: cell(k, rows, t),
                   sep if i == 0 else " ") for i, ticket in enumerate(tickets)]
