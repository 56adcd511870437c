"""The numbers behind the figures as tables: one long CSV, Markdown, and a small ASCII table for stdout."""
import csv
import io
import math
from typing import Dict, List, Optional, Sequence, Tuple

from .anatomy import CAPTIONS, Anatomy
from .series import FigureSpec, LayerChart, Series

CSV_COLUMNS = ["task", "framework", "metric", "higher_is_better", "ticket", "source", "schedule", "reset", "rate",
               "budget", "weights_pruned", "round", "fraction_pruned", "seeds", "mean", "std", "values", "partial"]
LAYER_COLUMNS = ["task", "round", "schedule", "reset", "weights_pruned", "parameter", "numel", "seeds",
                 "fraction_pruned_mean", "fraction_pruned_std"]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def mean_spread(mean: float, std: float, n: int) -> str:
    """"mean ± std" of n seeds, the spread to two significant digits and the mean to the same decimal place; one
    seed has no spread."""
    if n < 2:
        return _fmt(mean)
    if not (std > 0 and math.isfinite(std) and math.isfinite(mean)):
        return f"{_fmt(mean)} ± {_fmt(std)}"
    decimals = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def cell(s: Series, k: int) -> str:
    if k not in s.rounds:  # e.g. a random ticket's round 0: the dense round is the winning ticket's
        return "-"
    i = s.rounds.index(k)
    value = mean_spread(s.mean[i], s.std[i], s.n[i])
    partial = " *" if s.partial and s.partial[i] else ""  # explained under the table (`partial_notes`)
    return value + (f" (n={s.n[i]})" if s.n[i] != max(s.n) else "") + partial


def partial_notes(series: List[Series]) -> List[str]:
    """Why the cells marked * stand on less than their metric asks for (hollow points in the figure)."""
    return [f"* {s.label.split(',')[0]}, round {k}: {why}" for s in series
            for k, why in zip(s.rounds, s.partial or []) if why]


def wide(spec: FigureSpec, panel: int = 0) -> Tuple[List[str], List[List[str]]]:
    """A figure panel as a table: one row per round, one column per curve."""
    series = spec.panels[panel].series
    fractions = {}
    for s in series:
        for k, f in zip(s.rounds, s.fraction_pruned):
            fractions.setdefault(k, f)
    header = ["round", "% pruned"] + [s.label for s in series]
    rows = [[str(k), f"{100 * fractions[k]:.1f}"] + [cell(s, k) for s in series] for k in sorted(fractions)]
    return header, rows


def unique_series(specs: List[FigureSpec]) -> List[Series]:
    seen, out = set(), []
    for spec in specs:
        for s in ([spec.dense] if spec.dense else []) + spec.series():
            key = (spec.task, s.ticket, s.source, s.variant)
            if key not in seen:
                seen.add(key)
                out.append(s)
    return out


def csv_text(tasks) -> str:
    """`tasks`: [(group, [FigureSpec])]. One row per task, curve and round."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for group, specs in tasks:
        for s in unique_series(specs):
            v = s.variant
            for i, k in enumerate(s.rounds):
                w.writerow([group.task, group.framework, group.primary, group.higher_is_better, s.ticket, s.source,
                            v.schedule if v else "", v.reset if v else "", v.rate if v else "",
                            v.budget if v else "", v.selection_label() if v else "",
                            k, f"{s.fraction_pruned[i]:.6f}", s.n[i], repr(s.mean[i]), repr(s.std[i]),
                            " ".join(repr(x) for x in s.values[i]), s.partial[i] if s.partial else ""])
    return buf.getvalue()


def layers_csv_text(charts: List[LayerChart]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LAYER_COLUMNS)
    for c in charts:
        for name, numel, m, s in zip(c.names, c.numel, c.pruned_mean, c.pruned_std):
            w.writerow([c.task, c.round, c.variant.schedule, c.variant.reset, c.variant.selection_label(), name,
                        numel, c.n, f"{m:.6f}", f"{s:.6f}"])
    return buf.getvalue()


def _md_table(header, rows) -> str:
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)


def dense_text(dense: Optional[Series]) -> str:
    if dense is None:
        return "Unpruned network: not among the runs (round 0 of a winning-ticket run)."
    n = dense.n[0]
    value = mean_spread(dense.mean[0], dense.std[0], n)
    return f"Unpruned network: {value} ({n} seed{'s' * (n > 1)})."


def anatomy_tables(a: dict) -> Dict[str, Tuple[List[str], List[List[str]]]]:
    """The numbers behind the anatomy's overlap and sign figures, from `Anatomy.to_dict()` (report.json's form):
    {figure key: (header, rows)}, one row per curve and sparsity level; an overlap row has its chance line beside
    it."""
    tables = {}
    overlaps, signs = a["overlaps"], a["sign_agreement"]["curves"]
    if overlaps:
        rows = [[c["label"], f"{100 * f:.1f}", mean_spread(m, sd, len(vs)), str(len(vs)),
                 "-" if ch is None else _fmt(ch)]
                for c in overlaps
                for f, m, sd, vs, ch in zip(c["fraction_pruned"], c["mean"], c["std"], c["values"], c["chance"])]
        tables["overlap"] = ["masks compared", "% pruned", "overlap (IoU)", "pairs", "chance"], rows
    if signs:
        rows = [[c["label"], f"{100 * f:.1f}", mean_spread(m, sd, len(vs)), str(len(vs))]
                for c in signs for f, m, sd, vs in zip(c["fraction_pruned"], c["mean"], c["std"], c["values"])]
        tables["signs"] = ["tickets", "% pruned", "sign agreement", "seeds"], rows
    return tables


def text_table(header, rows) -> str:
    """Columns aligned to the right, for the terminal."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in [header] + rows)


def markdown_text(tasks, charts: List[LayerChart], anatomies: Sequence[Anatomy] = ()) -> str:
    out = ["# Lottery-ticket report", ""]
    by_task = {c.task: c for c in charts}
    anatomy_of = {a.task: a for a in anatomies}
    for group, specs in tasks:
        out += [f"## {group.task}", "", f"Framework {group.framework}; metric `{group.primary}` "
                f"({'higher' if group.higher_is_better else 'lower'} is better); {len(group.runs)} run(s).", ""]
        out += [group.settings_note, ""] if group.settings_note else []
        for spec in specs:
            out += [f"### {spec.title}", "", f"![{spec.title}]({spec.file})", "", spec.caption, "",
                    dense_text(spec.dense), ""]
            for i, panel in enumerate(spec.panels):
                if panel.title and len(spec.panels) > 1:
                    out += [f"**{panel.title}**", ""]
                out += [_md_table(*wide(spec, i)), ""]
                notes = partial_notes(([spec.dense] if spec.dense else []) + panel.series)
                out += [n + "  " for n in notes] + ([""] if notes else [])
        chart = by_task.get(group.task)
        if chart is not None:
            out += [f"### Pruning per parameter at round {chart.round}", "", f"![layers]({chart.file})", ""]
            rows = [[n, f"{e:,}", f"{100 * m:.1f}" + (f" ± {100 * s:.1f}" if chart.n > 1 else "")]
                    for n, e, m, s in zip(chart.names, chart.numel, chart.pruned_mean, chart.pruned_std)]
            out += [_md_table(["parameter", "entries", "% pruned"], rows), ""]
        if group.task in anatomy_of:
            out += _anatomy_markdown(anatomy_of[group.task])
    return "\n".join(out)


def _anatomy_markdown(a: Anatomy) -> List[str]:
    out = ["### Ticket anatomy", ""] if a.files or a.notes else []
    tables = anatomy_tables(a.to_dict())
    for what, file in a.files.items():
        out += [f"![{what}]({file})", "", CAPTIONS[what], ""]
        out += [_md_table(*tables[what]), ""] if what in tables else []
    out += [f"Note: {n}  " for n in a.notes] + ([""] if a.notes else [])
    return out


def ascii_text(tasks) -> str:
    """The main figure of each task, compact, for the terminal."""
    blocks = []
    for group, specs in tasks:
        spec = specs[0]
        header, rows = wide(spec)
        header = header[:2] + [s.label.split(",")[0] for s in spec.panels[0].series]
        notes = partial_notes(([spec.dense] if spec.dense else []) + spec.panels[0].series)
        blocks.append("\n".join([f"{group.task} ({group.primary}, "
                                 f"{'higher' if group.higher_is_better else 'lower'} is better) - "
                                 + dense_text(spec.dense), text_table(header, rows)] + notes))
    return "\n\n".join(blocks)
