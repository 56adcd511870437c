"""PNG figures with matplotlib's Agg canvas (no display, no pyplot state).

The x axis is the percentage of weights pruned on the scale -log(1 - pruned): each round of pruning a fixed
rate moves one equal step, so the high-sparsity rounds (90%, 95%, 98.8%) stay apart, as in the paper's figures.
Every function returns the data it drew, read back from the artists.
"""
import math
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .series import GRAY, FigureSpec, LayerChart, Series

MAX_PCT = 99.9999


def _forward(pct):
    pct = np.clip(np.asarray(pct, dtype=float), None, MAX_PCT)
    return -np.log1p(-pct / 100.0)


def _inverse(y):
    return 100.0 * (1.0 - np.exp(-np.asarray(y, dtype=float)))


def pruning_axis(ax, rate: float, last_round: int, label: bool = True) -> None:
    """Percent pruned on the round-spreading scale, one tick per round of pruning `rate`."""
    ax.set_xscale("function", functions=(_forward, _inverse))
    ticks = [100.0 * (1.0 - (1.0 - rate) ** k) for k in range(last_round + 1)]
    step = -math.log(1.0 - rate)
    ax.set_xlim(float(_inverse(-0.4 * step)), float(_inverse(last_round * step + 0.4 * step)))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.1f}"))
    ax.tick_params(axis="x", labelrotation=90 if last_round > 8 else 0, labelsize=7 if last_round > 8 else 8)
    if label:
        ax.set_xlabel("weights pruned (%)")


def _draw_series(ax, s: Series) -> dict:
    x = [100.0 * f for f in s.fraction_pruned]
    mean, std = np.asarray(s.mean), np.asarray(s.std)
    hollow = [bool(p) for p in s.partial] if s.partial else [False] * len(x)
    (line,) = ax.plot(x, mean, color=s.color, linestyle=s.linestyle, linewidth=1.5, label=s.label)
    # points whose value stands on less than the metric asks for (e.g. fewer finished games) are drawn hollow
    for flag in (False, True):
        idx = [i for i, h in enumerate(hollow) if h == flag]
        if idx:
            ax.plot([x[i] for i in idx], mean[idx], linestyle="none", marker="o", markersize=5 if flag else 3,
                    color=s.color, markerfacecolor="white" if flag else s.color)
    band = ax.fill_between(x, mean - std, mean + std, color=s.color, alpha=0.2, linewidth=0)
    return {"label": line.get_label(), "ticket": str(s.ticket), "color": s.color, "rounds": list(s.rounds),
            "x_percent_pruned": [float(v) for v in line.get_xdata()],
            "y_mean": [float(v) for v in line.get_ydata()], "y_std": [float(v) for v in std],
            "n": list(s.n), "shaded": band is not None, "hollow": hollow}


def _draw_dense(ax, dense: Series) -> dict:
    m, sd = dense.mean[0], dense.std[0]
    line = ax.axhline(m, color=GRAY, linestyle="--", linewidth=1.2, label=dense.label)
    if sd > 0:
        ax.axhspan(m - sd, m + sd, color=GRAY, alpha=0.15, linewidth=0)
    return {"label": line.get_label(), "ticket": "unpruned", "color": GRAY, "y_mean": float(line.get_ydata()[0]),
            "y_std": float(sd), "n": dense.n[0]}


def rounds_on_axis(fractions, rate: float) -> int:
    """Rounds of pruning `rate` (the axis' rate: the smallest of the runs) that reach the most pruned fraction
    given, at least 1. A round's fraction is off (1 - rate)^k by the rounding of whole weights: the tolerance
    absorbs that, so no empty round is added to the axis."""
    return max([math.ceil(math.log1p(-min(f, 0.999999)) / math.log1p(-rate) - 1e-2) for f in fractions] + [1])


def draw_metric_figure(spec: FigureSpec, path) -> dict:
    """Draw every panel of `spec` into `path`; returns {"panels": [{"title", "series": [...], "unpruned"}]}."""
    n = len(spec.panels)
    last = rounds_on_axis([f for s in spec.series() for f in s.fraction_pruned], spec.rate)
    width = 6.4 * n if n > 1 else 7.0
    fig = Figure(figsize=(width, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    drawn = {"kind": spec.kind, "title": spec.title, "ylabel": spec.ylabel, "panels": []}
    for ax, panel in zip(axes, spec.panels):
        pd = {"title": panel.title, "series": [_draw_series(ax, s) for s in panel.series], "unpruned": None}
        if spec.dense is not None:
            pd["unpruned"] = _draw_dense(ax, spec.dense)
        pruning_axis(ax, spec.rate, last)
        ax.set_ylabel(spec.ylabel)
        ax.grid(True, alpha=0.3)
        if panel.title and n > 1:
            ax.set_title(panel.title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        drawn["panels"].append(pd)
    # wrapped to the figure's width (about 12 characters per inch at 11 pt), else a long title is cut off
    fig.suptitle(textwrap.fill(spec.title, width=int(width * 12)), fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    return drawn


def set_title(ax, text: str, figure_width: float) -> None:
    """An axes title wrapped to the figure's width (about 11 characters per inch at 10 pt, the axes being
    narrower than the figure), else a long title is cut off."""
    ax.set_title(textwrap.fill(text, width=int(figure_width * 11)), fontsize=10)


def draw_layer_chart(chart: LayerChart, path) -> dict:
    """Horizontal bars: the percentage pruned of each parameter at one round, overall pruning as a line."""
    n = len(chart.names)
    height = min(60.0, max(3.0, 1.2 + 0.22 * n))
    fig = Figure(figsize=(8.0, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    y = np.arange(n)
    pct = 100.0 * np.asarray(chart.pruned_mean)
    err = 100.0 * np.asarray(chart.pruned_std)
    bars = ax.barh(y, pct, xerr=err if chart.n > 1 else None, color="tab:blue", alpha=0.8, height=0.7)
    ax.axvline(100.0 * chart.overall, color="black", linestyle="--", linewidth=1,
               label=f"all pruned weights: {100 * chart.overall:.1f}%")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{name} ({numel:,})" for name, numel in zip(chart.names, chart.numel)],
                       fontsize=7 if n > 20 else 8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("weights pruned in the parameter (%)")
    seeds = f"mean over {chart.n} seeds" if chart.n > 1 else "1 seed"
    set_title(ax, f"{chart.task}: pruning per parameter at round {chart.round} ({seeds})", 8.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return {"kind": "layers", "round": chart.round, "parameters": list(chart.names),
            "percent_pruned": [float(b.get_width()) for b in bars], "overall_percent": 100.0 * chart.overall}
