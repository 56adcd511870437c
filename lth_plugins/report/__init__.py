"""`lth report`: figures and tables of lottery-ticket runs, as in Yu et al. (ICLR 2020).

    collect  - load run directories, check them, group them by task (ReportError on bad input)
    series   - mean ± std over seeds per round; which figures a task gets
    plots    - PNGs (matplotlib Agg)
    tables   - CSV, Markdown and ASCII tables
    anatomy  - what the tickets' masks are made of: per-layer sparsity, overlaps against chance, sign agreement
    anatomy_plots - its PNGs
    html     - index.html
    output   - staging folder and atomic install into OUT
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .anatomy import Anatomy, plan_anatomy
from .collect import ReportError, TaskGroup, collect
from .series import LayerChart, plan_layers, plan_task, stems

__all__ = ["ReportError", "Report", "build_report"]


@dataclass
class Report:
    out: Path
    files: List[str]
    tasks: list                      # [(TaskGroup, [FigureSpec])]
    layer_charts: List[LayerChart]
    drawn: dict = field(default_factory=dict)   # file -> data read back from the drawn figure
    summary: str = ""
    notes: List[str] = field(default_factory=list)
    anatomy: List[Anatomy] = field(default_factory=list)


def build_report(run_dirs, out, layer_round: Optional[int] = None) -> Report:
    """Write OUT/index.html, OUT/report.{csv,md,json}, OUT/layer_sparsity.csv and OUT/figures/*.png."""
    try:
        from . import anatomy_plots, plots
    except ImportError as e:
        raise ReportError(f"lth report needs matplotlib ({e}); pip install 'lth-plugins[report]'") from None
    from . import html, output, tables

    out = Path(out)
    groups: List[TaskGroup] = collect(run_dirs)
    names = stems(groups)
    tasks = [(g, plan_task(g, names[g.task])) for g in groups]
    charts = [c for c in (plan_layers(g, names[g.task], layer_round) for g in groups) if c is not None]
    anatomies = [plan_anatomy(g, names[g.task]) for g in groups]
    figures = ([spec.file for _, specs in tasks for spec in specs] + [c.file for c in charts]
               + [f for a in anatomies for f in a.files.values()])
    files = ["index.html", "report.csv", "report.md", "report.json", "layer_sparsity.csv"] + figures
    output.check_target(out, files)
    report = Report(out, files, tasks, charts, notes=[c.note for c in charts if c.note], anatomy=anatomies)
    with output.Staging(out) as st:
        for _, specs in tasks:
            for spec in specs:
                report.drawn[spec.file] = plots.draw_metric_figure(spec, st.path(spec.file))
        for chart in charts:
            report.drawn[chart.file] = plots.draw_layer_chart(chart, st.path(chart.file))
        for a in anatomies:
            report.drawn.update(anatomy_plots.draw_anatomy(a, st.path))
        st.path("report.csv").write_text(tables.csv_text(tasks))
        st.path("layer_sparsity.csv").write_text(tables.layers_csv_text(charts))
        st.path("report.md").write_text(tables.markdown_text(tasks, charts, anatomies))
        data = {"tasks": [{"task": g.task, "settings": g.settings, "framework": g.framework, "metric": g.primary,
                           "higher_is_better": g.higher_is_better, "rate": g.rate, "rates": g.rates,
                           "seeds": g.seeds,
                           "runs": [str(r.path) for r in g.runs],
                           "figures": [{"file": s.file, "kind": s.kind, "title": s.title, "caption": s.caption,
                                        "unpruned": s.dense.to_dict() if s.dense else None,
                                        "panels": [{"title": p.title, "series": [x.to_dict() for x in p.series]}
                                                   for p in s.panels]} for s in specs]}
                          for g, specs in tasks],
                "layers": [c.to_dict() | {"file": c.file} for c in charts],
                "anatomy": [a.to_dict() for a in anatomies]}
        st.path("report.json").write_text(json.dumps(data, indent=1) + "\n")
        st.path("index.html").write_text(html.index_html(tasks, charts, files, anatomies))
        st.commit(files)
    report.summary = tables.ascii_text(tasks)
    return report
