"""The ticket-anatomy figures (matplotlib Agg): per-layer sparsity per round as a heat map, mask overlap beside
its chance line, and sign agreement. Every function returns the data it drew, read back from the artists."""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .anatomy import Anatomy, Curve
from .plots import pruning_axis, rounds_on_axis, set_title


def _figure(width: float, height: float):
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def draw_layer_rounds(anatomy: Anatomy, path) -> dict:
    """Heat map: parameters (rows) by rounds (columns), the percentage of each parameter pruned."""
    lr = anatomy.layers
    pct = 100.0 * np.asarray(lr.pruned, dtype=float)
    n, m = pct.shape
    labels = [f"{name} ({numel:,})" for name, numel in zip(lr.names, lr.numel)]
    # the row labels (about 0.06 inch a character at 7 pt) come out of the figure's width, not the map's
    width = min(24.0, max(6.0, 3.0 + 0.45 * m + 0.06 * max(map(len, labels))))
    fig, ax = _figure(width, min(60.0, max(3.0, 1.5 + 0.22 * n)))
    image = ax.imshow(pct, aspect="auto", cmap="viridis", vmin=0.0, vmax=100.0, interpolation="nearest")
    if n * m <= 400:  # the numbers stay legible
        for i in range(n):
            for j in range(m):
                ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if pct[i, j] < 60 else "black")
    ax.set_xticks(np.arange(m))
    ax.set_xticklabels([f"{k}\n{100 * f:.1f}%" for k, f in zip(lr.rounds, lr.fraction_pruned)], fontsize=7)
    ax.set_xlabel("round (all selected weights pruned)")
    ax.set_yticks(np.arange(n))
    ax.set_yticklabels(labels, fontsize=7 if n > 20 else 8)
    fig.colorbar(image, ax=ax, label="weights pruned in the parameter (%)")
    seeds = f"mean over {lr.seeds} seeds" if lr.seeds > 1 else "1 seed"
    set_title(ax, f"{anatomy.task}: pruning per parameter and round ({seeds})", width)
    fig.tight_layout()
    fig.savefig(path)
    return {"kind": "anatomy_layers", "parameters": list(lr.names), "rounds": list(lr.rounds),
            "percent_pruned": np.asarray(image.get_array()).tolist()}


def _curve(ax, c: Curve, chance: bool, first: bool) -> dict:
    x = [100.0 * f for f in c.fraction_pruned]
    mean, std = np.asarray(c.mean), np.asarray(c.std)
    (line,) = ax.plot(x, mean, color=c.color, marker="o", markersize=3, linewidth=1.5, label=c.label)
    ax.fill_between(x, mean - std, mean + std, color=c.color, alpha=0.2, linewidth=0)
    drawn = {"label": c.label, "kind": c.kind, "x_percent_pruned": [float(v) for v in line.get_xdata()],
             "y_mean": [float(v) for v in line.get_ydata()]}
    if chance:
        pts = [(xi, y) for xi, y in zip(x, c.chance) if y is not None]
        (ch,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c.color, linestyle="--", linewidth=1,
                        label="dashed: chance (random masks, same per-layer densities)" if first else "_nolegend_")
        drawn["y_chance"] = [float(v) for v in ch.get_ydata()]
    return drawn


def _curves_figure(anatomy: Anatomy, curves, path, ylabel: str, title: str, chance: bool, kind: str) -> dict:
    width = 7.5
    fig, ax = _figure(width, 4.8)
    ax.set_ylim(0.0, 1.02)  # fractions: chance and measured values on one honest scale
    drawn = {"kind": kind, "curves": [_curve(ax, c, chance, i == 0) for i, c in enumerate(curves)]}
    last = rounds_on_axis([f for c in curves for f in c.fraction_pruned], anatomy.rate)
    pruning_axis(ax, anatomy.rate, last)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    set_title(ax, title, width)
    fig.tight_layout()
    fig.savefig(path)
    return drawn


def draw_overlap(anatomy: Anatomy, path) -> dict:
    """IoU of the kept weights per sparsity (mean ± std over pairs of masks), each beside its chance line."""
    return _curves_figure(anatomy, anatomy.overlaps, path, "intersection over union of the kept weights",
                          f"{anatomy.task}: mask overlap", chance=True, kind="anatomy_overlap")


def draw_signs(anatomy: Anatomy, path) -> dict:
    """Fraction of the surviving weights whose sign after dense training equals their sign at the reset point."""
    return _curves_figure(anatomy, anatomy.signs, path, "surviving weights keeping their sign",
                          f"{anatomy.task}: sign agreement, reset point vs trained dense weights", chance=False,
                          kind="anatomy_signs")


DRAW = {"layers": draw_layer_rounds, "overlap": draw_overlap, "signs": draw_signs}


def draw_anatomy(anatomy: Anatomy, path_of) -> dict:
    """Draw each of the anatomy's figures into path_of(file); returns file -> drawn data."""
    return {file: DRAW[what](anatomy, path_of(file)) for what, file in anatomy.files.items()}
