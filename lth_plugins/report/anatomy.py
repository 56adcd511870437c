"""Ticket anatomy: what the winning tickets' masks are made of.

    - the fraction pruned of each parameter at every round (from each round's sparsity.json);
    - mask overlap (intersection over union of the kept weights) between seeds of one variant, between
      iterative and one-shot masks at the same sparsity and between a transferred ticket (found on another task)
      and this task's own winning ticket, beside the overlap of random masks with the same per-layer densities
      (the chance line);
    - the sign agreement of the surviving weights between the reset point and the trained weights.

The measures are pure functions over Masks and weight tensors; `plan_anatomy` reads a task's run stores. Masks
are counted with tensor operations and held one sparsity level (or one run) at a time, so large models stay fast
and within memory.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from ..errors import LotteryError, MaskError, RunStoreError
from ..hparams import Reset, Schedule, Ticket
from ..masks import Mask
from ..selection import without_kept_dense
from ..store import RunStore, Snapshot
from .collect import Run, TaskGroup, Variant
from .series import mean_std


# --- measures ---------------------------------------------------------------------------------------------------
def kept_counts(mask: Mask) -> Dict[str, Tuple[int, int]]:
    """name -> (weights kept, weights in the parameter)."""
    return {n: (int(torch.count_nonzero(m)), m.numel()) for n, m in mask.items()}


def _ratio(num: float, den: float) -> Optional[float]:
    return num / den if den > 0 else None


@dataclass
class Overlap:
    """Intersection over union of the kept weights of two masks, all parameters together and per parameter,
    with the chance value of random masks of the same per-layer densities (`chance_iou`)."""
    iou: Optional[float]
    chance_iou: Optional[float]
    layers: Dict[str, Optional[float]]
    chance_layers: Dict[str, Optional[float]]


def chance_intersection(n: int, k1: int, k2: int) -> float:
    """E|A∩B| of two independent uniformly random subsets of sizes k1 and k2 of n weights: each weight is in
    both with probability (k1/n)(k2/n), so the expectation is k1*k2/n."""
    return k1 * k2 / n if n else 0.0


def chance_iou(counts_a: Mapping[str, Tuple[int, int]], counts_b: Mapping[str, Tuple[int, int]]) -> Optional[float]:
    """The overlap of two random masks with the per-layer kept counts of A and B (name -> (kept, numel)).

    Per layer l with n_l weights and k1_l, k2_l kept: E|A∩B|_l = k1_l*k2_l/n_l. Since |A∪B| = |A| + |B| - |A∩B|,

        chance IoU = sum_l E|A∩B|_l / (sum_l k1_l + sum_l k2_l - sum_l E|A∩B|_l)

    This is the ratio of the expectations, not the expected ratio: IoU = X/(c - X) with X = |A∩B| and
    c = |A| + |B| is convex in X, so E[IoU] is a little larger (Jensen). To second order the relative excess is
    c Var(X) / (E X (c - E X)^2) <= 4/c, since the hypergeometric variance of X is at most its mean and
    c - E X >= c/2: negligible unless the masks keep only a few hundred weights. None when both keep nothing."""
    inter = sum(chance_intersection(counts_a[n][1], counts_a[n][0], counts_b[n][0]) for n in counts_a)
    kept = sum(k for k, _ in counts_a.values()) + sum(counts_b[n][0] for n in counts_a)
    return _ratio(inter, kept - inter)


def mask_overlap(a: Mask, b: Mask) -> Overlap:
    """IoU of the kept weights of `a` and `b` (masks of the same parameters), overall and per parameter, each
    with its chance value (`chance_iou`)."""
    if list(a) != list(b) or any(a[n].shape != b[n].shape for n in a):
        raise LotteryError("the masks prune different parameters: their overlap is undefined")
    ca, cb = kept_counts(a), kept_counts(b)
    inter = {n: int(torch.count_nonzero(a[n] & b[n])) for n in a}
    union = {n: ca[n][0] + cb[n][0] - inter[n] for n in a}
    return Overlap(iou=_ratio(sum(inter.values()), sum(union.values())), chance_iou=chance_iou(ca, cb),
                   layers={n: _ratio(inter[n], union[n]) for n in a},
                   chance_layers={n: chance_iou({n: ca[n]}, {n: cb[n]}) for n in a})


@dataclass
class SignMatch:
    """Per parameter, which weights have the same nonzero sign at the reset point and after training
    (`same`), and which are nonzero at the reset point (`signed`: a zero-initialised bias has no sign to keep)."""
    same: Dict[str, torch.Tensor]
    signed: Dict[str, torch.Tensor]

    @classmethod
    def of(cls, reset: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], names) -> "SignMatch":
        missing = [n for n in names if n not in reset or n not in trained]
        if missing:
            raise LotteryError(f"the snapshots lack {', '.join(missing[:3])}")
        same, signed = {}, {}
        for n in names:
            r, t = reset[n].detach(), trained[n].detach()
            same[n] = (torch.sign(r) * torch.sign(t)) > 0
            signed[n] = r != 0
        return cls(same, signed)

    def agreement(self, mask: Optional[Mask] = None) -> Optional[float]:
        """The fraction of the kept weights (all weights without a mask) with a sign at the reset point that
        have the same sign after training."""
        agree = signed = 0
        for n, same in self.same.items():
            keep = self.signed[n] if mask is None else self.signed[n] & mask[n]
            agree += int(torch.count_nonzero(same & keep))
            signed += int(torch.count_nonzero(keep))
        return _ratio(agree, signed)


def sign_agreement(mask: Mask, reset: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor]):
    """The fraction of the weights `mask` keeps, nonzero at the reset point, whose sign after training equals
    their sign at the reset point."""
    return SignMatch.of(reset, trained, list(mask)).agreement(mask)


# --- what the report shows ---------------------------------------------------------------------------------------
@dataclass
class LayerRounds:
    """The fraction pruned of each parameter (rows) at each round (columns), mean over the seeds of one variant's
    winning tickets."""
    names: List[str]
    numel: List[int]
    rounds: List[int]
    fraction_pruned: List[float]          # all selected weights, per round
    pruned: List[List[float]]             # [parameter][round]
    seeds: int
    runs: List[str]

    def to_dict(self) -> dict:
        return {"parameters": self.names, "numel": self.numel, "rounds": self.rounds,
                "fraction_pruned": self.fraction_pruned, "pruned": self.pruned, "seeds": self.seeds,
                "runs": self.runs}


@dataclass
class Curve:
    """One anatomy curve over the sparsity levels: the mean over `values` (pairs of masks, or seeds) per level,
    and for overlaps the chance line."""
    kind: str                             # "seeds", "schedules", "transfer" or "signs"
    label: str
    color: str
    fraction_pruned: List[float] = field(default_factory=list)
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)
    values: List[List[float]] = field(default_factory=list)
    chance: List[Optional[float]] = field(default_factory=list)
    layers: Dict[str, List[Optional[float]]] = field(default_factory=dict)          # mean per parameter
    chance_layers: Dict[str, List[Optional[float]]] = field(default_factory=dict)
    runs: List[str] = field(default_factory=list)

    def add(self, fraction: float, values: List[float], chance: Optional[float] = None,
            layers: Optional[List[Dict[str, Optional[float]]]] = None,
            chance_layers: Optional[List[Dict[str, Optional[float]]]] = None) -> None:
        m, sd = mean_std(values)
        self.fraction_pruned.append(fraction)
        self.mean.append(m)
        self.std.append(sd)
        self.values.append(values)
        self.chance.append(chance)
        for target, per_pair in ((self.layers, layers), (self.chance_layers, chance_layers)):
            for name in (per_pair or [{}])[0]:
                xs = [p[name] for p in per_pair if p[name] is not None]
                target.setdefault(name, []).append(sum(xs) / len(xs) if xs else None)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("kind", "label", "color", "fraction_pruned", "mean", "std", "values",
                                           "runs")}
        if self.kind != "signs":
            d.update(chance=self.chance, layers=self.layers, chance_layers=self.chance_layers)
        return d


@dataclass
class Anatomy:
    """The anatomy of one task's winning tickets, and the figure files it gets."""
    task: str
    rate: float
    layers: Optional[LayerRounds]
    overlaps: List[Curve]
    signs: List[Curve]
    sign_note: str = ""
    notes: List[str] = field(default_factory=list)
    files: Dict[str, str] = field(default_factory=dict)   # "layers" / "overlap" / "signs" -> figure file

    def to_dict(self) -> dict:
        return {"task": self.task, "files": self.files,
                "layers": self.layers.to_dict() if self.layers else None,
                "overlaps": [c.to_dict() for c in self.overlaps],
                "sign_agreement": {"note": self.sign_note, "curves": [c.to_dict() for c in self.signs]},
                "notes": self.notes}


OVERLAP_COLORS = ("tab:blue", "tab:purple", "tab:green", "tab:orange", "tab:brown", "tab:olive", "tab:cyan")
SIGN_NOTE = ("The store keeps no trained weights of the pruned rounds: every round's surviving weights are "
             "compared between the reset point the ticket trains from (init, or the late-reset snapshot) and "
             "the trained dense weights of round 0. Round 0: all weights. Weights zero at the reset point "
             "(e.g. zero-initialised biases) have no sign and are left out.")
CAPTIONS = {"layers": "Percentage of each parameter pruned at each round (mean over the seeds of the main variant's "
                      "winning tickets).",
            "overlap": "Intersection over union of the kept weights (mean ± std over pairs of masks at the same "
                       "sparsity); dashed: the overlap two random masks with the same per-layer densities would "
                       "have.",
            "signs": SIGN_NOTE}


def layer_rounds(runs: List[Run]) -> Optional[LayerRounds]:
    """Per-parameter fraction pruned at every round the runs finished (mean over those that did), from
    sparsity.json; None without a pruned round."""
    rounds = sorted({k for r in runs for k in r.records})
    if not any(k > 0 for k in rounds):
        return None
    per_round = {k: [r.sparsity(k) for r in runs if k in r.records] for k in rounds}
    first = per_round[rounds[0]][0]
    names = list(first.get("density", {}))
    if any(list(sp.get("density", {})) != names for sps in per_round.values() for sp in sps):
        return None  # the runs prune other parameters: plan_layers names the clash
    pruned = [[sum(1.0 - float(sp["density"][n]) for sp in per_round[k]) / len(per_round[k]) for k in rounds]
              for n in names]
    overall = [sum(float(r.records[k].fraction_pruned) for r in runs if k in r.records)
               / sum(1 for r in runs if k in r.records) for k in rounds]
    return LayerRounds(names, [int(first.get("numel", {}).get(n, 0)) for n in names], rounds, overall, pruned,
                       len(runs), [str(r.path) for r in runs])


def _level(run: Run, k: int) -> float:
    """Round k's nominal fraction pruned, the key that matches masks of the same sparsity across schedules."""
    rec = run.records[k]
    f = rec.nominal_fraction_pruned if rec.nominal_fraction_pruned is not None else rec.fraction_pruned
    return round(float(f), 6)


def _pairs(a: List[Run], b: List[Run]) -> List[Tuple[Run, Run]]:
    """Runs of two variants compared seed by seed when they share seeds, else every run with every run."""
    same = [(x, y) for x in a for y in b if x.seed == y.seed]
    return same or [(x, y) for x in a for y in b]


def _reset_kind(variant: Variant) -> str:
    return Snapshot.LATE if variant.reset is Reset.LATE else Snapshot.INIT


def plan_anatomy(group: TaskGroup, stem: str) -> Anatomy:
    """Read the masks, sparsity reports and snapshots of the group's winning tickets (random tickets train
    their winning runs' masks) and measure their anatomy."""
    winners = [r for r in group.runs if r.ticket is Ticket.WINNING]
    default = group.default_variant()
    base = group.runs_of(default, Ticket.WINNING) or group.runs_of(default, Ticket.RANDOM)
    anatomy = Anatomy(group.task, group.rate, layer_rounds(base), [], [])
    stores = {id(r): RunStore(r.path) for r in winners}
    levels: Dict[float, Dict[int, int]] = {}   # level -> id(run) -> round
    for r in winners:
        for k in r.records:
            if k > 0 and stores[id(r)].has_mask(k):
                levels.setdefault(_level(r, k), {})[id(r)] = k

    variants = group.variants(Ticket.WINNING)
    colors = iter(OVERLAP_COLORS)
    selection = _selection_suffixes(variants)
    seed_curves = {v: Curve("seeds", f"between seeds ({v.method_label(show_rate=len(group.rates) > 1)}"
                                     f"{selection[v]}, {len(group.runs_of(v, Ticket.WINNING))} seeds)",
                            next(colors, "black"))
                   for v in variants if len({r.seed for r in group.runs_of(v, Ticket.WINNING)}) > 1}
    schedule_curves = {(it, os_): Curve("schedules", f"iterative vs one-shot ({it.method_label()} | "
                                                     f"{os_.method_label()}{selection[it]})", next(colors, "black"))
                       for it in variants for os_ in variants
                       if it.schedule is Schedule.ITERATIVE and os_.schedule is Schedule.ONESHOT
                       and it.selection == os_.selection}

    for level in sorted(levels):
        at = levels[level]
        masks = {}
        for i, k in at.items():  # the masks of one sparsity level at a time
            try:
                masks[i] = stores[i].load_mask(k)
            except MaskError as e:
                anatomy.notes.append(f"left out of the anatomy: {e}")
        for v, c in seed_curves.items():
            runs = [r for r in group.runs_of(v, Ticket.WINNING) if id(r) in masks]
            _add_overlaps(c, level, [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]], masks)
        for (it, os_), c in schedule_curves.items():
            pairs = _pairs([r for r in group.runs_of(it, Ticket.WINNING) if id(r) in masks],
                           [r for r in group.runs_of(os_, Ticket.WINNING) if id(r) in masks])
            _add_overlaps(c, level, pairs, masks)
        del masks
    anatomy.overlaps = [c for c in list(seed_curves.values()) + list(schedule_curves.values())
                        + _transfer_curves(group, anatomy.notes) if c.mean]
    anatomy.signs = _sign_curves(group, levels, stores, anatomy.notes)
    anatomy.sign_note = SIGN_NOTE if anatomy.signs else ""
    if anatomy.layers is not None:
        anatomy.files["layers"] = f"figures/{stem}_anatomy_layers.png"
    if anatomy.overlaps:
        anatomy.files["overlap"] = f"figures/{stem}_anatomy_overlap.png"
    elif levels:
        anatomy.notes.append("no mask overlaps: they compare two seeds of a variant's winning tickets, an iterative "
                             "and a one-shot run of a seed, or a transferred ticket with this task's own, and these "
                             "runs hold none of those pairs")
    if anatomy.signs:
        anatomy.files["signs"] = f"figures/{stem}_anatomy_signs.png"
    return anatomy


TRANSFER_COLORS = ("tab:purple", "tab:pink", "tab:gray")


def _transfer_curves(group: TaskGroup, notes: List[str]) -> List[Curve]:
    """Per source task, the overlap of the transferred tickets' masks (their sources') with this task's own
    winning tickets of the same variant at the same sparsity, seed by seed where they share seeds; parameters a
    transferred ticket keeps dense are left out of both."""
    found: Dict[Tuple[str, str], Dict[float, List[Overlap]]] = {}  # by transfer_key
    runs: Dict[Tuple[str, str], List[str]] = {}
    for tt in (r for r in group.runs if r.ticket is Ticket.TRANSFERRED):
        own = group.runs_of(tt.variant, Ticket.WINNING)
        if not own or not tt.masks_from:
            continue
        try:
            source, lottery = RunStore(tt.masks_from), RunStore(tt.path).lottery
        except RunStoreError as e:
            notes.append(f"no transfer overlap for {tt.path}: {e}")
            continue
        task = tt.transfer_key
        for _, w in _pairs([tt], own):
            theirs = {_level(w, k): k for k in w.records if k > 0}
            for k in sorted(tt.records):
                level = _level(tt, k)
                if k == 0 or level not in theirs or not source.has_mask(k):
                    continue
                try:
                    a = Mask(without_kept_dense(source.load_mask(k), lottery).items())
                    mine = RunStore(w.path).load_mask(theirs[level])
                    overlap = mask_overlap(a, Mask((n, mine[n]) for n in a if n in mine))
                except (LotteryError, MaskError) as e:
                    notes.append(f"no transfer overlap of {tt.path} and {w.path} at round {k}: {e}")
                    continue
                found.setdefault(task, {}).setdefault(level, []).append(overlap)
                runs.setdefault(task, [])
                runs[task] += [p for p in (str(tt.path), str(w.path)) if p not in runs[task]]
    curves = []
    for i, task in enumerate(sorted(found)):
        c = Curve("transfer", f"transferred ticket from {task[0]} vs this task's own winning ticket",
                  TRANSFER_COLORS[i % len(TRANSFER_COLORS)], runs=runs[task])
        for level in sorted(found[task]):
            overlaps = [o for o in found[task][level] if o.iou is not None]
            chances = [o.chance_iou for o in overlaps if o.chance_iou is not None]
            if overlaps:
                c.add(level, [o.iou for o in overlaps], sum(chances) / len(chances) if chances else None,
                      [o.layers for o in overlaps], [o.chance_layers for o in overlaps])
        curves.append(c)
    return curves


def _add_overlaps(curve: Curve, level: float, pairs, masks: Dict[int, Mask]) -> None:
    overlaps = [mask_overlap(masks[id(a)], masks[id(b)]) for a, b in pairs]
    overlaps = [o for o in overlaps if o.iou is not None]
    if not overlaps:
        return
    chances = [o.chance_iou for o in overlaps if o.chance_iou is not None]
    curve.add(level, [o.iou for o in overlaps], sum(chances) / len(chances) if chances else None,
              [o.layers for o in overlaps], [o.chance_layers for o in overlaps])
    for a, b in pairs:
        for r in (a, b):
            if str(r.path) not in curve.runs:
                curve.runs.append(str(r.path))


def _selection_suffixes(variants) -> Dict[object, str]:
    """'; WHICH WEIGHTS' per variant where the variants prune different weights (else their curves would share a
    name), '' where they all prune the same."""
    return {v: f"; {v.selection_label()}" if len({u.selection for u in variants}) > 1 else "" for v in variants}


def _sign_curves(group: TaskGroup, levels: Dict[float, Dict[int, int]], stores: Dict[int, RunStore],
                 notes: List[str]) -> List[Curve]:
    """Sign agreement per winning variant and sparsity level, mean over its seeds; one run's sign match in
    memory at a time (the masks are read again: cheaper than holding every run's match)."""
    per_run: Dict[int, Dict[float, float]] = {}
    lacking = []
    for r in group.runs:
        if id(r) not in stores:
            continue
        match = _sign_match(r, stores[id(r)], notes)
        if match is None:
            lacking.append(r.name)
            continue
        values = {0.0: match.agreement()}  # round 0: every weight
        for level, at in levels.items():
            if id(r) in at:
                try:
                    values[level] = match.agreement(stores[id(r)].load_mask(at[id(r)]))
                except MaskError:
                    pass  # named by the overlaps' pass
        per_run[id(r)] = {level: v for level, v in values.items() if v is not None}
    if lacking:
        notes.append(f"no sign agreement for {', '.join(lacking)}: the run store lacks the reset-point or the "
                     f"{Snapshot.DENSE_TRAINED} snapshot")
    curves = []
    variants = group.variants(Ticket.WINNING)
    selection = _selection_suffixes(variants)
    for v in variants:
        runs = [r for r in group.runs_of(v, Ticket.WINNING) if id(r) in per_run]
        c = Curve("signs", f"{v.method_label(show_rate=len(group.rates) > 1)}{selection[v]}: reset point vs "
                           f"trained dense weights", OVERLAP_COLORS[len(curves) % len(OVERLAP_COLORS)],
                  runs=[str(r.path) for r in runs])
        for level in sorted({lv for r in runs for lv in per_run[id(r)]}):
            c.add(level, [per_run[id(r)][level] for r in runs if level in per_run[id(r)]])
        if len(c.mean) > 1:
            curves.append(c)
    return curves


def _sign_match(run: Run, store: RunStore, notes: List[str]) -> Optional[SignMatch]:
    """The sign match of a winning run's reset point and its trained dense weights; None when a snapshot is
    missing, or (with a note) unusable."""
    reset = _reset_kind(run.variant)
    if not (store.has_snapshot(reset) and store.has_snapshot(Snapshot.DENSE_TRAINED)):
        return None
    names = list(run.sparsity(min(run.records)).get("density", {}))
    try:
        return SignMatch.of(store.load_snapshot(reset), store.load_snapshot(Snapshot.DENSE_TRAINED), names)
    except LotteryError as e:  # RunStoreError included: an unreadable snapshot
        notes.append(f"{run.path}: no sign agreement ({e})")
        return None
