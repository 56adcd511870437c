"""index.html: every figure and table of the report, with relative links, readable from disk (no server)."""
from html import escape
from typing import List, Sequence

from .anatomy import CAPTIONS, Anatomy
from .series import LayerChart
from .tables import anatomy_tables, dense_text, partial_notes, wide

STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}details{margin-bottom:1em}code{background:#f5f5f5}
.note{color:#a60}"""


def _table(header, rows) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def index_html(tasks, charts: List[LayerChart], files: List[str], anatomies: Sequence[Anatomy] = ()) -> str:
    by_task = {c.task: c for c in charts}
    anatomy_of = {a.task: a for a in anatomies}
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>Lottery-ticket report</title>",
             f"<style>{STYLE}</style></head><body>", "<h1>Lottery-ticket report</h1>",
             "<p>Tables: " + ", ".join(f"<a href='{escape(f)}'>{escape(f)}</a>" for f in files
                                       if f.endswith((".csv", ".md", ".json"))) + "</p>",
             "<ul>" + "".join(f"<li><a href='#task-{i}'>{escape(g.task)}</a></li>"
                              for i, (g, _) in enumerate(tasks)) + "</ul>"]
    for i, (group, specs) in enumerate(tasks):
        parts.append(f"<h2 id='task-{i}' title='{escape(group.settings_note)}'>{escape(group.task)}</h2>")
        if group.settings_note:
            parts.append(f"<p class='note'>{escape(group.settings_note)}</p>")
        parts.append(f"<p>Framework <code>{escape(group.framework)}</code>; metric <code>{escape(group.primary)}"
                     f"</code> ({'higher' if group.higher_is_better else 'lower'} is better); prune rate "
                     f"{group.rate:g} per round.</p>")
        for spec in specs:
            parts.append(f"<h3>{escape(spec.title)}</h3>")
            parts.append(f"<p><img src='{escape(spec.file)}' alt='{escape(spec.title)}'></p>")
            parts.append(f"<p>{escape(spec.caption)} {escape(dense_text(spec.dense))}</p>")
            for j, panel in enumerate(spec.panels):
                if panel.title and len(spec.panels) > 1:
                    parts.append(f"<h4>{escape(panel.title)}</h4>")
                parts.append(_table(*wide(spec, j)))
                for note in partial_notes(([spec.dense] if spec.dense else []) + panel.series):
                    parts.append(f"<p class='note'>{escape(note)}</p>")
        chart = by_task.get(group.task)
        if chart is not None:
            parts.append(f"<h3>Pruning per parameter at round {chart.round}</h3>")
            if chart.note:
                parts.append(f"<p class='note'>{escape(chart.note)}</p>")
            parts.append(f"<p><img src='{escape(chart.file)}' alt='pruning per parameter'></p>")
            rows = [[n, f"{e:,}", f"{100 * m:.1f} ± {100 * s:.1f}"]
                    for n, e, m, s in zip(chart.names, chart.numel, chart.pruned_mean, chart.pruned_std)]
            parts.append("<details><summary>table</summary>" + _table(["parameter", "entries", "% pruned"], rows)
                         + "</details>")
        if group.task in anatomy_of:
            parts.append(_anatomy_html(anatomy_of[group.task]))
        runs = "".join(f"<li><code>{escape(str(r.path))}</code>: {escape(str(r.ticket))} ticket, "
                       f"{escape(r.variant.method_label())}, {escape(r.variant.selection_label())}, seed {r.seed}, "
                       f"{len(r.records)} round(s) finished</li>" for r in group.runs)
        parts.append(f"<details><summary>{len(group.runs)} run(s)</summary><ul>{runs}</ul></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _anatomy_html(a: Anatomy) -> str:
    parts = ["<h3>Ticket anatomy</h3>"] if a.files or a.notes else []
    tables = anatomy_tables(a.to_dict())
    for what, file in a.files.items():
        parts.append(f"<p><img src='{escape(file)}' alt='ticket anatomy: {escape(what)}'></p>"
                     f"<p>{escape(CAPTIONS[what])}</p>")
        if what in tables:
            parts.append("<details><summary>table</summary>" + _table(*tables[what]) + "</details>")
    parts += [f"<p class='note'>{escape(n)}</p>" for n in a.notes]
    return "\n".join(parts)
