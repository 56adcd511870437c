"""Which vocabulary rows a translation ticket keeps: the fraction of each embedding row (and output projection row)
a winning ticket keeps at every round, by where the row's token occurs in the training data: in the pair the ticket
was found on, in another language's targets only, or in none of the pairs given (the source's and --targets').
With one joint vocabulary, a ticket found on one pair may prune the rows of the tokens that pair never uses far
more than the rest, and a ticket carried to another language then arrives with much of that language's own
vocabulary pruned: this prints how much.

    python examples/small/vocabulary_rows.py --data OUT --run WT_DIR [--source LANG] [--targets LANG ...]
"""
import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fairseq_ext import catalogs, import_fairseq_quietly  # noqa: E402
from lth_plugins.errors import LotteryError, run_command  # noqa: E402
from lth_plugins.hparams import Ticket  # noqa: E402
from lth_plugins.report.collect import task_identity  # noqa: E402
from lth_plugins.store import RunStore  # noqa: E402

ROW_PARAMETERS = ("embed_tokens.weight", "output_projection.weight")  # one row per dictionary entry


@dataclass
class Occurrences:
    """How often each dictionary entry occurs in the training split of English->X pairs: {X: (English side, X side)};
    fairseq's special symbols (padding, end of sentence...: the first `special` rows) count none."""
    sides: Dict[str, Tuple[np.ndarray, np.ndarray]]
    special: int

    @classmethod
    def read(cls, root: Path, langs: List[str]) -> "Occurrences":
        """Each pair's training split read once."""
        import_fairseq_quietly()
        from fairseq.data import Dictionary, data_utils

        sides, special = {}, 0
        for lang in langs:
            pair = f"{catalogs.SOURCE_LANG}-{lang}"
            counts = []
            for side in (catalogs.SOURCE_LANG, lang):
                d = Dictionary.load(str(root / pair / f"dict.{side}.txt"))
                ds = data_utils.load_indexed_dataset(str(root / pair / f"train.{pair}.{side}"), d)
                if ds is None:
                    raise LotteryError(f"no training split in {root / pair} (is it a folder `lth data catalogs` "
                                       f"built?)")
                c = np.bincount(np.concatenate([ds[i].numpy() for i in range(len(ds))]), minlength=len(d))
                c[:d.nspecial] = 0
                counts.append(c)
                special = d.nspecial
            sides[lang] = (counts[0], counts[1])
        return cls(sides, special)


def row_groups(occ: Occurrences, source: str, targets: List[str]) -> Dict[str, np.ndarray]:
    """{group name: boolean per dictionary row}: the source pair's tokens (either side); per target, the tokens of
    its targets the source pair never uses (targets may share them); the subwords of none of these pairs."""
    in_source = sum(occ.sides[source]) > 0
    groups = {f"in en-{source} (either side)": in_source}
    seen = in_source.copy()
    for lang in targets:
        groups[f"in {lang} targets, not en-{source}"] = (occ.sides[lang][1] > 0) & ~in_source
        seen |= sum(occ.sides[lang]) > 0
    seen[:occ.special] = True  # padding, end of sentence...: no subword of any language
    groups["in none of these pairs"] = ~seen
    return groups


def target_share(occ: Occurrences, lang: str, rows: np.ndarray) -> float:
    """The share of English->LANG's target tokens (occurrences, end of sentence aside) that fall on `rows`."""
    counts = occ.sides[lang][1]
    return float(counts[rows].sum() / counts.sum())


def print_rows(run: Path, root: Path, source: str, targets: List[str]) -> None:
    """Per round of the winning run `run`, the fraction kept of each row group of its vocabulary parameters."""
    occ = Occurrences.read(root, [source, *targets])
    groups = row_groups(occ, source, targets)
    print(f"vocabulary rows kept by {run}:")
    for lang in targets:
        share = target_share(occ, lang, groups[f"in {lang} targets, not en-{source}"])
        print(f"en-{lang}: {100 * share:.1f}% of its training target tokens are subwords en-{source} never uses")
    store, n_rows = RunStore.view(run), len(next(iter(groups.values())))
    for k in store.finished_rounds():
        if k == 0 or not store.has_mask(k):
            continue
        mask = store.load_mask(k)
        names = [n for n in mask if n.endswith(ROW_PARAMETERS) and mask[n].dim() == 2 and len(mask[n]) == n_rows]
        if not names:
            print(f"round {k}: no pruned parameter has one row per dictionary entry ({', '.join(ROW_PARAMETERS)} "
                  f"with {n_rows} rows): its vocabulary is not pruned")
        for name in names:
            kept = mask[name].float().mean(dim=1).numpy()
            print(f"round {k}, {name}: kept {kept.mean():.3f} of all rows; " + "; ".join(
                f"{g} ({int(rows.sum())} rows) {kept[rows].mean():.3f}" for g, rows in groups.items() if rows.any()))


def run_language(run: Path, given: Optional[str]) -> str:
    """The target language of the winning run `run` (X of the English->X pair its settings record); `given`, the
    --source flag, must agree with it. Anything but a winning run is refused: its masks are not its own."""
    store = RunStore(run)
    if store.lottery.ticket is not Ticket.WINNING:
        raise LotteryError(f"--run {run} is a {store.lottery.ticket} ticket's run, whose masks come from another "
                           f"run: give a winning-ticket run")
    settings = store.config.get("settings") or {}
    named = re.fullmatch(r"translation (\S+)-(\S+)", task_identity(store.config))  # a pair fairseq inferred
    src, lang = (settings.get("source_lang"), settings.get("target_lang")) if settings.get("target_lang") else \
        (named.groups() if named else (None, None))
    if src and src != catalogs.SOURCE_LANG:
        raise LotteryError(f"--run {run} trained on {src}-{lang}; the catalogs' pairs are {catalogs.SOURCE_LANG}-X")
    if given and lang and given != lang:
        raise LotteryError(f"--source {given}, but the run {run} trained on {catalogs.SOURCE_LANG}-{lang}")
    if not (given or lang):
        raise LotteryError(f"the run {run} records no target language (is it a translation run?): give --source")
    return given or lang


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="OUT", help="what lth data catalogs built (OUT/en-X folders)")
    p.add_argument("--run", required=True, type=Path, help="a winning-ticket run on English->SOURCE")
    p.add_argument("--source", default=None, help="the language of the run's pair (default: the one the run "
                                                   "records)")
    p.add_argument("--targets", nargs="+", default=None, metavar="LANG",
                   help="the other languages (default: every other pair OUT holds)")
    a = p.parse_args()
    root, run = Path(a.data).resolve(), a.run.resolve()
    source = run_language(run, a.source)
    catalogs.pair_target(root / f"{catalogs.SOURCE_LANG}-{source}")  # one error naming a missing pair
    targets = a.targets or [t for t in catalogs.built_targets(root) if t != source]
    if source in targets:
        raise LotteryError(f"--targets {source}: that is the run's own language; give the other languages")
    if not targets:
        raise LotteryError(f"{root} holds no pair but {catalogs.SOURCE_LANG}-{source}: build the others with it "
                           f"(lth data catalogs --langs {source},X OUT, into a new OUT)")
    for lang in targets:
        catalogs.pair_target(root / f"{catalogs.SOURCE_LANG}-{lang}")
    print_rows(run, root, source, targets)


if __name__ == "__main__":
    sys.exit(run_command(main, "vocabulary_rows.py"))
