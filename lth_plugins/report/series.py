"""What each figure shows: runs aggregated over seeds into series (mean and standard deviation per round),
and the plan of a task's figures (winning vs random, ablations, pruned-weight selections, per-layer sparsity)."""
import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..hparams import Budget, Reset, Ticket
from .collect import ReportError, Run, TaskGroup, Variant

BLUE, RED, GREEN, PURPLE, GRAY = "tab:blue", "tab:red", "tab:green", "tab:purple", "tab:gray"
OTHER_COLORS = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")

METRIC_NAMES = {"bleu": "BLEU", "reward": "reward", "mean_reward": "mean reward", "episode_reward": "reward",
                "log_perplexity": "log perplexity", "log_ppl": "log perplexity", "ppl": "perplexity",
                "nll_loss": "NLL loss", "test_accuracy": "test accuracy", "accuracy": "accuracy",
                "bleu_tok": "BLEU (tokenized, as multi-bleu.perl)", "test_log_ppl": "test log perplexity",
                "ticket_reward": "ticket reward"}


def metric_label(primary: str, higher_is_better: bool) -> str:
    name = METRIC_NAMES.get(primary.lower(), primary.replace("_", " "))
    return f"{name} ({'higher' if higher_is_better else 'lower'} is better)"


@dataclass
class Series:
    """One curve: the mean over seeds per round, with the standard deviation (sample, 0 for one seed)."""
    label: str
    ticket: str                      # "winning", "random" or "unpruned"
    variant: Optional[Variant]
    rounds: List[int]
    fraction_pruned: List[float]     # mean over seeds of the measured fraction pruned, per round
    mean: List[float]
    std: List[float]
    n: List[int]
    values: List[List[float]]
    runs: List[str]
    color: str = BLUE
    linestyle: str = "-"
    # per round: why some of its values stand on less than the metric asks for (drawn hollow); "" when none
    partial: List[str] = field(default_factory=list)
    source: str = ""                 # a transferred ticket's source task: one curve per source

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("label", "rounds", "fraction_pruned", "mean", "std", "n",
                                           "values", "runs", "color", "linestyle", "partial", "source")}
        d["ticket"] = str(self.ticket)
        if self.variant is not None:
            d["variant"] = {"schedule": str(self.variant.schedule), "reset": str(self.variant.reset),
                            "include": list(self.variant.include), "exclude": list(self.variant.exclude)}
        return d


def mean_std(xs: List[float]):
    """(mean, sample std) of a list: what every "mean ± std over seeds" of the project is; std 0 for one value,
    (nan, nan) for none."""
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s


def aggregate(runs: List[Run], label: str, ticket: str, variant: Optional[Variant], color: str,
              linestyle: str = "-", rounds=None) -> Optional[Series]:
    """Per round, the mean and std over the runs that finished it with a value (None when no run has any such
    round); rounds where some run's value is partial or missing say why in `partial`."""
    _check_distinct_seeds(runs, label)
    ks = sorted({k for r in runs for k in r.records if rounds is None or k in rounds})
    s = Series(label, ticket, variant, [], [], [], [], [], [], [str(r.path) for r in runs], color, linestyle)
    for k in ks:
        have = [r for r in runs if k in r.records]
        valued = [r for r in have if r.value(k) is not None]
        reasons = sorted({f"{r.partial(k)} ({r.name})" for r in have if r.partial(k)})
        if not valued:
            continue
        vals = [r.value(k) for r in valued]
        m, sd = mean_std(vals)
        s.rounds.append(k)
        s.fraction_pruned.append(sum(float(r.records[k].fraction_pruned) for r in valued) / len(valued))
        s.mean.append(m)
        s.std.append(sd)
        s.n.append(len(vals))
        s.values.append(vals)
        s.partial.append("; ".join(reasons))
    return s if s.rounds else None


def _check_distinct_seeds(runs: List[Run], label: str) -> None:
    """A curve averages seeds: two of its runs with one seed are a grouping error, refused rather than drawn."""
    by_seed: Dict[int, Run] = {}
    for r in runs:
        if r.seed in by_seed:
            raise ReportError(f"the curve {label!r} would average {by_seed[r.seed].path} and {r.path}, which share "
                              f"the lottery seed {r.seed}, as if they were two seeds; report them separately")
        by_seed[r.seed] = r


def dense_baseline(group: TaskGroup) -> Optional[Series]:
    runs = group.dense_runs()
    if not runs:
        return None
    s = aggregate(runs, "unpruned network", "unpruned", None, GRAY, "--", rounds={0})
    if s is not None:  # the legend states the dense score the tickets are compared with
        s.label = f"unpruned network: {s.mean[0]:.4g} ({_seeds(runs)})"
    return s


def training_note(group: TaskGroup) -> str:
    """How many updates the rounds trained ("600 updates per round"); "" when the records do not say."""
    counts = set()
    for r in group.runs:
        for rec in r.records.values():
            if rec.updates is not None:
                counts.add(int(rec.updates))
    if not counts:
        return ""
    lo, hi = min(counts), max(counts)
    return f"{lo} updates per round" if lo == hi else f"{lo}-{hi} updates per round"


def _seeds(runs: List[Run]) -> str:
    return f"{len(runs)} seed{'s' * (len(runs) > 1)}"


def _ticket_series(group: TaskGroup, variant: Variant, ticket: Ticket, color: str, linestyle: str = "-",
                   label: Optional[str] = None) -> Optional[Series]:
    runs = group.runs_of(variant, ticket)
    if not runs:
        return None
    label = label or f"{ticket} ticket ({variant.method_label(show_rate=len(group.rates) > 1)})"
    return aggregate(runs, f"{label}, {_seeds(runs)}", ticket, variant, color, linestyle)


@dataclass
class Panel:
    title: str
    series: List[Series]


@dataclass
class FigureSpec:
    kind: str              # "tickets", "ablation" or "selection"
    task: str
    title: str
    file: str              # path relative to the report folder
    ylabel: str
    rate: float
    panels: List[Panel]
    dense: Optional[Series]
    caption: str = ""

    def series(self) -> List[Series]:
        return [s for p in self.panels for s in p.series]


@dataclass
class LayerChart:
    task: str
    variant: Variant
    round: int
    file: str
    names: List[str]
    numel: List[int]
    pruned_mean: List[float]
    pruned_std: List[float]
    n: int
    overall: float
    runs: List[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {"task": self.task, "round": self.round, "variant": self.variant.method_label(),
                "selection": self.variant.selection_label(), "parameters": self.names, "numel": self.numel,
                "fraction_pruned_mean": self.pruned_mean, "fraction_pruned_std": self.pruned_std,
                "seeds": self.n, "overall_fraction_pruned": self.overall, "runs": self.runs}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "task"


def spread_caption(series: List[Series]) -> str:
    """How many seeds the curves average, and whether a spread is shown (one seed has none)."""
    ns = sorted({n for s in series for n in s.n})
    if not ns:
        return ""
    if ns == [1]:
        return "One seed per curve: values without spread."
    seeds = f"{ns[0]}-{ns[-1]}" if len(ns) > 1 else str(ns[0])
    return f"Mean ± standard deviation across {seeds} seeds per point."


def budget_caption(group: TaskGroup, variants: List[Variant]) -> str:
    """What the pruned rounds trained: the rest of the dense schedule after a late reset, or all of it."""
    late = [v for v in variants if v.reset is Reset.LATE and any(group.runs_of(v, t) for t in Ticket)]
    if not late:
        return "Pruned rounds reset to init and train the dense round's full schedule."
    budgets = {v.budget for v in late}
    parts = []
    if Budget.REST in budgets:
        parts.append("after the late reset at update j, pruned rounds train updates j+1..T of the dense "
                     "schedule (lr schedule continued), ending where the dense round ended")
    if Budget.FULL in budgets:
        parts.append("runs marked 'full budget' retrained all T updates after the late reset, j more than "
                     "the dense round (budget 'full')")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


TRANSFER_STYLES = ("-", "--", ":", "-.")


def transferred_series(group: TaskGroup, variant: Variant) -> List[Series]:
    """Transferred tickets (purple), one curve per task their masks were found on (told apart by line style)."""
    by_source: Dict[Tuple[str, str], List[Run]] = {}
    for r in group.runs_of(variant, Ticket.TRANSFERRED):
        by_source.setdefault(r.transfer_key, []).append(r)
    out = []
    for i, ((task, _), runs) in enumerate(sorted(by_source.items())):
        s = aggregate(runs, f"transferred ticket from {task}, {_seeds(runs)}", Ticket.TRANSFERRED, variant, PURPLE,
                      TRANSFER_STYLES[i % len(TRANSFER_STYLES)])
        if s:
            s.source = task
            out.append(s)
    return out


def tickets_title(series: List[Series]) -> str:
    """What a tickets figure compares, by the tickets it draws: "winning vs random tickets", "winning tickets",
    "winning vs random, shuffled and transferred tickets"."""
    kinds = list(dict.fromkeys(s.ticket for s in series))
    if not kinds:  # nothing to draw yet (e.g. no game finished)
        return "tickets"
    if len(kinds) <= 2:
        return " vs ".join(kinds) + " tickets"
    return f"{kinds[0]} vs {', '.join(kinds[1:-1])} and {kinds[-1]} tickets"


def plan_task(group: TaskGroup, stem: str) -> List[FigureSpec]:
    """The figures of one task: winning vs random (always), the schedule/reset ablation when the runs hold
    more than one of those variants (paper Figures 3-5), the pruned-weight selections side by side when they
    differ (paper Figure 6)."""
    ylabel = metric_label(group.primary, group.higher_is_better)
    dense = dense_baseline(group)
    default = group.default_variant()
    figures = []

    main = [s for s in (_ticket_series(group, default, Ticket.WINNING, BLUE, label="winning ticket"),
                        _ticket_series(group, default, Ticket.RANDOM, RED, label="random ticket"),
                        _ticket_series(group, default, Ticket.SHUFFLED, GREEN, label="shuffled ticket (control)"),
                        *transferred_series(group, default))
            if s]
    show_rate = len(group.rates) > 1
    sel = ("" if default == Variant.paper() else
           f" [{default.method_label(show_rate=show_rate)}; {default.selection_label()}]")
    note = training_note(group)
    sel += f" ({note})" if note else ""
    figures.append(FigureSpec("tickets", group.task, f"{group.task}: {tickets_title(main)}{sel}",
                              f"figures/{stem}_tickets.png", ylabel, group.rate, [Panel("", main)], dense,
                              "Winning tickets (blue), random tickets (red) and shuffled tickets (green: the "
                              "winning ticket's per-layer densities at random positions, where run), transferred "
                              "tickets (purple: another task's winning ticket, its masks and reset weights, trained "
                              "on this task, where run); gray: the unpruned network. "
                              + spread_caption(main) + " " + budget_caption(group, [default])))

    def method_panel(selection_variants: List[Variant], base: Variant) -> List[Series]:
        out, colors = [], iter(OTHER_COLORS)
        for v in selection_variants:
            s = _ticket_series(group, v, Ticket.WINNING, BLUE if v == base else next(colors, "black"))
            if s:
                out.append(s)
        for v in selection_variants:
            s = _ticket_series(group, v, Ticket.RANDOM, RED, "-" if v == base else ":")
            if s:
                out.append(s)
        return out

    same_selection = [v for v in group.variants() if v.selection == default.selection]
    if len({v.method for v in same_selection if group.runs_of(v, Ticket.WINNING)}) > 1:
        series = method_panel(same_selection, default)
        title = (f"{group.task}: pruning schedules, resets and prune rates" if show_rate else
                 f"{group.task}: iterative vs one-shot pruning, late reset vs reset to init")
        figures.append(FigureSpec("ablation", group.task, title, f"figures/{stem}_ablation.png", ylabel,
                                  group.rate, [Panel(default.selection_label(), series)], dense,
                                  "Winning tickets of each pruning schedule, reset and prune rate, and random "
                                  "tickets, at the fraction of weights each pruned. " + spread_caption(series)
                                  + " " + budget_caption(group, same_selection)))

    selections = []
    for v in group.variants():
        if v.selection not in selections:
            selections.append(v.selection)
    if len(selections) > 1:
        panels = []
        for selection in selections:
            vs = [v for v in group.variants() if v.selection == selection]
            base = next((v for v in vs if group.runs_of(v, Ticket.WINNING)), vs[0])
            panels.append(Panel(vs[0].selection_label(), method_panel(vs, base)))
        figures.append(FigureSpec("selection", group.task, f"{group.task}: which weights are pruned",
                                  f"figures/{stem}_selection.png", ylabel, group.rate, panels, dense,
                                  "Each panel prunes a different set of weights (e.g. all weights vs. "
                                  "embeddings excluded); fraction pruned counts the weights eligible."))
    return figures


def plan_layers(group: TaskGroup, stem: str, round_index: Optional[int] = None) -> Optional[LayerChart]:
    """Fraction pruned per parameter at one round (default: the last round every run of the default variant
    finished; a negative round counts back from it: -1 is that round), mean over seeds, for the default variant's
    winning tickets (random tickets share their masks)."""
    default = group.default_variant()
    runs = group.runs_of(default, Ticket.WINNING) or group.runs_of(default, Ticket.RANDOM)
    pruned_rounds = sorted({k for r in runs for k in r.records if k > 0})
    if not pruned_rounds:
        return None
    note = ""
    common = sorted(set.intersection(*({k for k in r.records if k > 0} for r in runs))) or pruned_rounds
    if round_index is None:
        k = common[-1]
    elif round_index < 0:  # counted from the last round every run finished, as Python counts from a list's end
        if -round_index > len(common):
            raise ReportError(f"layer round {round_index} counts back past the first pruned round: the runs of "
                              f"{group.task} finished {len(common)} pruned rounds ({', '.join(map(str, common))})")
        k = common[round_index]
    elif round_index in pruned_rounds:
        k = round_index
    else:
        k = max(j for j in pruned_rounds if j <= round_index) if pruned_rounds[0] <= round_index else pruned_rounds[0]
        note = f"round {round_index} is not finished in the runs of {group.task}; showing round {k}"
    runs = [r for r in runs if k in r.records]
    sparsities = [r.sparsity(k) for r in runs]
    names = list(sparsities[0].get("density", {}))
    for r, sp in zip(runs, sparsities):
        if list(sp.get("density", {})) != names:
            raise ReportError(f"{r.path} prunes other parameters than {runs[0].path} at round {k}: their "
                              f"models differ, so they cannot share a figure")
    numel = [int(sparsities[0].get("numel", {}).get(n, 0)) for n in names]
    mean, std = [], []
    for n in names:
        m, s = mean_std([1.0 - float(sp["density"][n]) for sp in sparsities])
        mean.append(m)
        std.append(s)
    overall = sum(float(r.records[k].fraction_pruned) for r in runs) / len(runs)
    return LayerChart(group.task, default, k, f"figures/{stem}_layers_round{k:02d}.png", names, numel, mean,
                      std, len(runs), overall, [str(r.path) for r in runs], note)


STEM_LENGTH = 40


def stems(groups: List[TaskGroup]) -> Dict[str, str]:
    """A distinct, short, file-system-safe file-name stem per task: a long name is cut, with a digest of the
    whole name to keep it apart from others cut alike."""
    out, used = {}, set()
    for g in groups:
        base = slug(g.task)
        if len(base) > STEM_LENGTH:
            base = base[:STEM_LENGTH].rstrip("-.") + "-" + hashlib.sha256(g.task.encode()).hexdigest()[:6]
        stem, i = base, 2
        while stem.lower() in used:
            stem, i = f"{base}-{i}", i + 1
        used.add(stem.lower())
        out[g.task] = stem
    return out
