"""English→X translation data from the gettext catalogs that Debian packages install
(/usr/share/locale/<lang>/LC_MESSAGES/*.mo): human translations of the same English messages into many languages.

`lth data catalogs --langs de,fr,es OUT` writes one fairseq-binarized folder per pair (OUT/en-de/, ...) sharing
one joint sentencepiece vocabulary (OUT/spm.model, OUT/dict.txt), the cleaned detokenized text of every split
(OUT/en-de/raw/), and OUT/manifest.json (catalogs read with their Debian packages, counts of every cleaning rule
and split, sha256 of every file produced). `score` gives sacreBLEU and chrF of detokenized output.

Cleaning, each rule counted per language (catalogs are read with polib):
* message contexts (msgctxt) are dropped: a context exists because the English alone does not decide the
  translation, and every pair here is keyed on its English text;
* plural entries keep the singular pair only (msgid with msgstr[0], the form Plural-Forms gives n=1);
* empty translations are dropped (untranslated);
* a multi-line message is split into line pairs when it is a --help block whose every line starts with the same
  option on both sides, else joined into one line (translators reflow prose);
* keyboard accelerators (`_File`, `&File`, `(_F)`), markup (HTML/Pango tags, entities) and placeholders (`%s`,
  `%1$s`, `%(name)s`, `{0}`, with the quotes around them) are removed from both sides;
* pairs whose English has fewer than MIN_WORDS or more than --max-words words are dropped, then pairs whose
  translation equals the English, then duplicates of an English text (its most frequent translation is kept).

OUT holds only what this builder wrote (listed in its manifest): a folder holding anything else, or data built from
other inputs, is refused before anything changes, so a rerun never deletes a user's file or replaces the vocabulary
that models were trained on. The build works in OUT/.build/ and moves its files into place at the end.

One split for all languages: an English text's split depends only on that text (a hash of it), so no test
sentence of one language is a training sentence of another, whatever languages a build holds.
"""
import argparse
import collections
import hashlib
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lth_plugins.errors import LotteryError

LOCALE_DIR = Path("/usr/share/locale")
SOURCE_LANG = "en"
SPLITS = ("train", "valid", "test")
MIN_WORDS = 3
MAX_WORDS = 40
MIN_PAIRS = 1000
VOCAB_SIZE = 8000
# shares of the English texts (by hash) in valid and test: about 2,000 sentences each for German, French, Spanish
HELD_OUT_SHARE = 0.058
# sentencepiece's advice: full character coverage, except for the large character sets of these languages
CJK_LANGS = ("ja", "zh", "ko")
CJK_CHARACTER_COVERAGE = 0.9995
# packages that ship catalogs for many languages (measured: the owners of /usr/share/locale/de/LC_MESSAGES here)
CATALOG_PACKAGES = ("coreutils", "bash", "apt", "dpkg", "git", "libc-l10n", "libglib2.0-data", "gnupg-l10n",
                    "iso-codes", "make", "tar", "grep", "sed", "findutils", "diffutils", "wget", "man-db",
                    "binutils-common")
# how a model trained on a pair is decoded for its score (beam 5, sentencepiece pieces joined back into text)
GENERATE_ARGS = "--beam 5 --max-len-a 1.2 --max-len-b 10 --post-process sentencepiece"
# updates per round of `lth demo`'s Transformer on a pair (examples/small/transformer_fig6.py --data); its dense
# model's convergence at this budget is measured on the validation split by benchmarks/bench_catalogs_convergence.py
TRANSFORMER_BUDGET = 3200
LATE_RESET = "1ep"  # the paper's late reset for its LSTM and RL runs (one epoch of a pair: about 183 updates)
MARKER = ".lth-data-catalogs"  # marks a folder this builder owns
BUILD_DIR = ".build"
MANIFEST = "manifest.json"
BUILDER = "lth data catalogs"


class CatalogError(LotteryError):
    """Missing catalogs or an output folder that is not this builder's."""


# --- cleaning -----------------------------------------------------------------------------------------------
_PRINTF = r"%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I64|I32)?[diouxXeEfFgGcspaA]"
_PYTHON = r"%\([^)\s]+\)[-+#0 ]*\d*(?:\.\d+)?[a-zA-Z]"
_BRACES = r"\{[^{}\s]*\}"
_PLACEHOLDER = f"(?:{_PYTHON}|{_PRINTF}|{_BRACES}|%<PRI\\w+>)"
_OPEN, _CLOSE = "'\"`„“”‘’‚«»‹›「『(\\[<", "'\"`“”‘’«»‹›」』)\\]>"
PLACEHOLDER = re.compile(rf"[{_OPEN}]\s*{_PLACEHOLDER}\s*[{_CLOSE}]|{_PLACEHOLDER}")
# an accelerator mark is `_` or `&` right before a letter at the start of a word (not an HTML entity), or
# the "(_F)" that CJK translations append
ACCELERATOR = re.compile(r"\([_&][^\W_]\)|(?<!\w)_(?=[^\W\d_])|&(?=[^\W\d_])(?!\w+;)")
MID_WORD_ACCELERATOR = re.compile(r"(?<=[^\W\d_])_(?=[^\W\d_])")
MARKUP = re.compile(r"</?(?:a|b|big|br|code|em|i|p|s|small|span|strong|sub|sup|tt|u|markup)(?:\s[^<>]*)?/?>",
                    re.I)
LETTER = re.compile(r"[^\W\d_]")


def remove_accelerators(english: str, translation: str) -> Tuple[str, str, bool]:
    """Both sides without keyboard accelerator marks; a mid-word mark (`Ö_ffnen`) is removed from the
    translation only when the English has one and it is the translation's only underscore."""
    en, n = ACCELERATOR.subn("", english)
    tr, m = ACCELERATOR.subn("", translation)
    if n and not m and translation.count("_") == 1:
        tr, m = MID_WORD_ACCELERATOR.subn("", tr)
    return en, tr, bool(n or m)


def remove_markup(text: str) -> str:
    return html.unescape(MARKUP.sub("", text))


def remove_placeholders(text: str) -> Tuple[str, int]:
    """The text without placeholders (a printf `%%` becomes `%`), and how many there were."""
    text, n = PLACEHOLDER.subn(" ", text.replace("%%", "\0"))
    return text.replace("\0", "%"), n


def tidy(text: str) -> str:
    """NFKC (what sentencepiece applies too, so references and decoded output agree), one space between words,
    no punctuation left at the start by a removed placeholder."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return re.sub(r"^[\s:;,]+", "", text).strip()


# --- reading ------------------------------------------------------------------------------------------------
@dataclass
class LanguageData:
    """The cleaned pairs of one language and how every catalog entry was counted."""
    lang: str
    catalogs: List[dict] = field(default_factory=list)
    corrupt: List[dict] = field(default_factory=list)
    counts: Dict[str, int] = field(default_factory=lambda: collections.Counter())
    pairs: Dict[str, str] = field(default_factory=dict)  # English -> translation


COUNT_KEYS = ("entries", "context", "plural_singular_kept", "untranslated", "multiline_split", "multiline_lines",
              "multiline_joined", "accelerators", "markup", "placeholders", "too_short", "too_long",
              "identical", "duplicate", "pairs")


def catalog_paths(lang: str, locale_dir: Path = LOCALE_DIR) -> List[Path]:
    return sorted((Path(locale_dir) / lang / "LC_MESSAGES").glob("*.mo"))


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_entries(path: Path):
    """The entries of one .mo file, read by polib; raises ValueError on a corrupt file."""
    import struct

    import polib

    try:
        return list(polib.mofile(str(path)))
    except (OSError, ValueError, LookupError, struct.error, IndexError) as e:
        raise ValueError(f"{type(e).__name__}: {e}") from None


OPTION_LINE = re.compile(r"\s*(-[^\s,=]+)")


def _units(english: str, translation: str, counts) -> List[Tuple[str, str]]:
    """A message as line pairs: a --help block split into its option lines, any other message as one line."""
    english, translation = english.strip(), translation.strip()
    if "\n" not in english and "\n" not in translation:
        return [(english, translation)]
    en = [s for s in english.splitlines() if s.strip()]
    tr = [s for s in translation.splitlines() if s.strip()]
    # translators reflow prose, but keep a help block's lines, each starting with its option
    options = [OPTION_LINE.match(s) for s in en]
    if len(en) == len(tr) and all(m and tr[i].lstrip().startswith(m.group(1)) for i, m in enumerate(options)):
        counts["multiline_split"] += 1
        counts["multiline_lines"] += len(en)
        return list(zip(en, tr))
    counts["multiline_joined"] += 1
    return [(" ".join(en), " ".join(tr))]


def clean_pair(english: str, translation: str, counts, max_words: int) -> Optional[Tuple[str, str]]:
    """One cleaned (English, translation) line pair, or None with the rule that dropped it counted."""
    english, translation, accel = remove_accelerators(english, translation)
    counts["accelerators"] += accel
    en, tr = remove_markup(english), remove_markup(translation)
    counts["markup"] += (en, tr) != (english, translation)
    english, translation = en, tr
    (en, n), (tr, m) = remove_placeholders(english), remove_placeholders(translation)
    counts["placeholders"] += bool(n or m)
    en, tr = tidy(en), tidy(tr)
    words = len(en.split())
    if not LETTER.search(tr):
        counts["untranslated"] += 1
    elif words < MIN_WORDS:
        counts["too_short"] += 1
    elif words > max_words:
        counts["too_long"] += 1
    elif en == tr:
        counts["identical"] += 1
    else:
        return en, tr
    return None


def read_language(lang: str, locale_dir: Path = LOCALE_DIR, max_words: int = MAX_WORDS,
                  warn=None) -> LanguageData:
    """Read and clean every catalog of `lang`; a corrupt catalog is skipped, named through `warn` and counted."""
    data = LanguageData(lang)
    counts = data.counts
    found: Dict[str, collections.Counter] = {}  # English -> Counter of translations, in catalog order
    for path in catalog_paths(lang, locale_dir):
        record = {"path": str(path), "sha256": sha256_file(path)}
        try:
            entries = read_entries(path)
        except ValueError as e:
            data.corrupt.append({**record, "error": str(e)})
            if warn:
                warn(f"skipping corrupt catalog {path}: {e}")
            continue
        entries = [e for e in entries if e.msgid]  # the header
        record["entries"] = len(entries)
        data.catalogs.append(record)
        for entry in entries:
            counts["entries"] += 1
            if entry.msgctxt:
                counts["context"] += 1
                continue
            translation = entry.msgstr
            if entry.msgid_plural:
                counts["plural_singular_kept"] += 1
                translation = entry.msgstr_plural.get(0, "")
            if not translation.strip():
                counts["untranslated"] += 1
                continue
            for en, tr in _units(entry.msgid, translation, counts):
                pair = clean_pair(en, tr, counts, max_words)
                if pair:
                    found.setdefault(pair[0], collections.Counter())[pair[1]] += 1
    for en, translations in found.items():
        # most frequent translation; Counter keeps first-seen order among equals
        data.pairs[en] = translations.most_common(1)[0][0]
        counts["duplicate"] += sum(translations.values()) - 1
    counts["pairs"] = len(data.pairs)
    data.counts = {k: int(counts.get(k, 0)) for k in COUNT_KEYS}
    return data


def split_of(english: str, held_out_share: float = HELD_OUT_SHARE) -> str:
    """The split of an English text, the same in every language and build: a hash of the text alone."""
    x = int.from_bytes(hashlib.sha256(english.encode()).digest()[:8], "big") / 2 ** 64
    return "test" if x < held_out_share else "valid" if x < 2 * held_out_share else "train"


# --- Debian packages ----------------------------------------------------------------------------------------
def debian_packages(paths: Sequence[str]) -> Dict[str, Tuple[Optional[str], Optional[str]]]:
    """path -> (Debian package, its version) by `dpkg -S` and `dpkg-query -W`; (None, None) where no package
    owns the file or dpkg is absent."""
    owners: Dict[str, Optional[str]] = {p: None for p in paths}
    if not paths or shutil.which("dpkg") is None:
        return {p: (None, None) for p in paths}
    out = subprocess.run(["dpkg", "-S", *paths], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True).stdout
    for line in out.splitlines():
        if line.startswith("diversion ") or ": " not in line:
            continue
        pkgs, path = line.split(": ", 1)
        if path in owners:
            owners[path] = pkgs.split(", ")[0]
    names = sorted({p for p in owners.values() if p})
    versions = {}
    if names:
        out = subprocess.run(["dpkg-query", "-W", "-f=${binary:Package}\t${Package}\t${Version}\n", *names],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        for line in out.splitlines():
            full, short, version = line.split("\t")
            versions[full] = versions[short] = version
    return {p: (pkg, versions.get(pkg)) for p, pkg in owners.items()}


def installed_packages(names: Sequence[str]) -> set:
    """Those of the Debian packages `names` that dpkg has installed (none where dpkg is absent)."""
    if shutil.which("dpkg-query") is None:
        return set()
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Status}\n", *names],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return {line.split("\t")[0] for line in out.splitlines() if line.endswith("\tinstalled")}


def too_few_pairs_message(bad: Dict[str, LanguageData], max_words: int, min_pairs: int, locale_dir: Path) -> str:
    """One error for every language with fewer than --min-pairs pairs: whether the length rules removed them
    (naming the flag to change) or the catalogs themselves are too few (and which packages provide them)."""
    lines = [f"too few pairs after cleaning for {', '.join(bad)} (--min-pairs {min_pairs}):"]
    few_catalogs = []
    for lang, data in bad.items():
        c, pairs = data.counts, len(data.pairs)
        line = (f"  {lang}: {len(data.catalogs)} catalogs under {Path(locale_dir) / lang / 'LC_MESSAGES'}, "
                f"{c.get('entries', 0)} entries, {pairs} pairs")
        if pairs + c.get("too_long", 0) >= min_pairs:
            line += (f"; --max-words {max_words} dropped {c['too_long']} longer English messages: "
                     f"raise --max-words, or lower --min-pairs")
        elif pairs + c.get("too_long", 0) + c.get("too_short", 0) >= min_pairs:
            line += (f"; {c['too_short']} English messages shorter than {MIN_WORDS} words and {c['too_long']} "
                     f"longer than --max-words {max_words} were dropped: lower --min-pairs")
        else:
            few_catalogs.append(lang)
        lines.append(line)
    if not few_catalogs:
        return "\n".join(lines)
    installed = installed_packages(CATALOG_PACKAGES)
    missing = [p for p in CATALOG_PACKAGES if p not in installed]
    lines.append(f"too few gettext catalogs for {', '.join(few_catalogs)}. Debian has no language packs: each "
                 "package ships its own translations. "
                 + (f"Packages with catalogs in many languages, not installed here: apt-get install {' '.join(missing)}"
                    if missing else
                    f"The packages with catalogs in many languages are installed ({', '.join(CATALOG_PACKAGES)}) "
                    "and hold none for these names: check them against the languages below"))
    excludes = [p for p in Path("/etc/dpkg/dpkg.cfg.d").glob("*")
                if p.is_file() and "/usr/share/locale" in p.read_text(errors="replace")]
    if excludes:
        lines.append(f"dpkg here leaves out translations ({', '.join(map(str, excludes))} excludes "
                     "/usr/share/locale): remove that rule, then reinstall those packages (apt-get install "
                     "--reinstall ...)")
    have = sorted((len(catalog_paths(p.name, locale_dir)), p.name) for p in Path(locale_dir).glob("*")
                  if p.is_dir())
    have = [f"{lang} ({n})" for n, lang in reversed(have) if n][:12]
    if have:
        lines.append(f"languages with the most catalogs here: {', '.join(have)}")
    return "\n".join(lines)


# --- scoring ------------------------------------------------------------------------------------------------
def score(hypotheses: Sequence[str], references: Sequence[str], target_lang: Optional[str] = None) -> dict:
    """sacreBLEU BLEU and chrF of detokenized (sentencepiece-decoded) `hypotheses` against the raw references
    (OUT/en-X/raw/test.X), with sacreBLEU's signatures. The paper reports case-sensitive tokenized BLEU
    (multi-bleu.perl on Moses-tokenized text), which is not comparable to these numbers."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    bleu, chrf = BLEU(trg_lang=target_lang or ""), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def pair_target(folder) -> str:
    """X of a pair folder OUT/en-X that this builder wrote; an error naming the folder otherwise."""
    folder = Path(folder)
    source, _, target = folder.name.partition("-")
    if source != SOURCE_LANG or not target or not (folder.parent / MARKER).is_file() or \
            not (folder / "raw" / f"test.{target}").is_file():
        raise CatalogError(f"{folder}: not a pair folder of '{BUILDER}' (OUT/{SOURCE_LANG}-X with raw/test.X); "
                           f"build one with: lth data catalogs --langs X OUT")
    return target


def built_targets(out) -> List[str]:
    """X of every pair folder OUT/en-X that this builder wrote in `out`, sorted."""
    targets = []
    for folder in sorted(Path(out).glob(f"{SOURCE_LANG}-*")):
        try:
            targets.append(pair_target(folder))
        except CatalogError:
            continue
    return targets


def generated_hypotheses(path, n: int) -> List[str]:
    """The detokenized hypotheses (D- lines) of a fairseq-generate output file for a test set of `n` sentences,
    in test-set order; a sentence fairseq-generate printed nothing for counts as an empty hypothesis."""
    found = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("D-"):
            head, _, text = line.split("\t", 2)
            found[int(head[2:])] = text
    return [found.get(i, "") for i in range(n)]


# --- the build ----------------------------------------------------------------------------------------------
@dataclass
class Settings:
    langs: List[str]
    max_words: int = MAX_WORDS
    min_pairs: int = MIN_PAIRS
    vocab_size: int = VOCAB_SIZE
    held_out_share: float = HELD_OUT_SHARE
    max_pairs: Optional[int] = None  # per language, a subset chosen by a hash independent of the split

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _limit(pairs: Dict[str, str], max_pairs: Optional[int]) -> Dict[str, str]:
    if max_pairs is None or len(pairs) <= max_pairs:
        return pairs
    keep = set(sorted(pairs, key=lambda en: hashlib.sha256(b"subset\0" + en.encode()).digest())[:max_pairs])
    return {en: tr for en, tr in pairs.items() if en in keep}


def _versions() -> Dict[str, str]:
    """Versions of the libraries that shape the data (fairseq is installed as fairseq or fairseq-fixed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for names in (("polib",), ("sentencepiece",), ("fairseq", "fairseq-fixed"), ("sacrebleu",)):
        for name in names:
            try:
                found[names[0]] = version(name)
                break
            except PackageNotFoundError:
                continue
    return found


# names this builder keeps at the top of OUT besides the data its manifest lists
OWN_NAMES = (MARKER, f"{MARKER}.lock", MANIFEST, BUILD_DIR)
SPM_CONTROL_PIECES = 3  # <unk>, <s>, </s>


def character_coverage(langs: Sequence[str]) -> float:
    return CJK_CHARACTER_COVERAGE if any(lang.split("_")[0] in CJK_LANGS for lang in langs) else 1.0


def check_settings(settings: Settings, locale_dir: Path) -> None:
    """Refuse a value no build can use, naming its flag and the values allowed, before anything is read."""
    s = settings
    problems = [
        (s.max_words < MIN_WORDS, f"--max-words {s.max_words}: give at least {MIN_WORDS} (the fewest English words "
                                  f"a pair keeps)"),
        (s.min_pairs < 1, f"--min-pairs {s.min_pairs}: give at least 1"),
        (s.max_pairs is not None and s.max_pairs < 1, f"--max-pairs {s.max_pairs}: give at least 1, or leave it out "
                                                      f"to keep every pair"),
        (not 0 < s.held_out_share < 0.5, f"--held-out-share {s.held_out_share}: give a share above 0 and below 0.5 "
                                         f"(valid and test take it each, train the rest)"),
        (s.vocab_size < 1, f"--vocab-size {s.vocab_size}: give a positive number of pieces (at least the "
                           f"training text's distinct characters + {SPM_CONTROL_PIECES})"),
        (not Path(locale_dir).is_dir(), f"--locale-dir {locale_dir}: no such folder (the catalogs are under "
                                        f"LOCALE_DIR/LANG/LC_MESSAGES/*.mo; Debian's: {LOCALE_DIR})"),
    ]
    for bad, message in problems:
        if bad:
            raise CatalogError(message)


def required_pieces(texts: Sequence[str], coverage: float) -> int:
    """The fewest pieces sentencepiece accepts for `texts`: every character it must cover is a piece of its own
    (the rule of its trainer: most frequent characters first, until `coverage` of all occurrences), the word
    boundary among them, plus the control pieces."""
    chars = collections.Counter(c for t in texts for c in "\u2581" + t.replace(" ", "\u2581"))
    total, covered, required = sum(chars.values()), 0, 0
    for _, n in chars.most_common():
        if covered / total >= coverage:
            break
        covered += n
        required += 1
    return required + SPM_CONTROL_PIECES


def _recorded_manifest(out: Path) -> Optional[dict]:
    """The manifest of the data in `out`: OUT/manifest.json or, after a build killed while it moved its data
    in, the one it was moving in (OUT/.build/manifest.json, moved last)."""
    for path in (out / MANIFEST, out / BUILD_DIR / MANIFEST):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def first_foreign_path(out: Path, manifest: Optional[dict]) -> Optional[Path]:
    """The first path under `out` (sorted) that this builder did not write: in a folder without its marker,
    anything; else anything but its own names and the files `manifest` lists (and their folders)."""
    if not (out / MARKER).is_file():
        return min(out.iterdir(), default=None)
    owned = set(manifest["files"]) if manifest else set()
    owned_dirs = {str(parent) for f in owned for parent in Path(f).parents if str(parent) != "."}

    def walk(folder: Path) -> Optional[Path]:
        for path in sorted(folder.iterdir()):
            rel = str(path.relative_to(out))
            if folder == out and path.name in OWN_NAMES:
                continue
            if rel in owned_dirs and path.is_dir() and not path.is_symlink():
                found = walk(path)
                if found:
                    return found
            elif not (rel in owned and path.is_file() and not path.is_symlink()):
                return path
        return None

    return walk(out)


def check_output_dir(out: Path) -> Optional[dict]:
    """Refuse an output folder that holds anything this builder did not write (nothing is touched); returns the
    manifest of the data it holds, if any."""
    if out.exists() and not out.is_dir():
        raise CatalogError(f"{out} is a file; give a new or empty folder, or one this command built")
    if not out.exists():
        return None
    manifest = _recorded_manifest(out)
    foreign = first_foreign_path(out, manifest)
    if foreign:
        raise CatalogError(f"{out} holds other data: {foreign} was not written by '{BUILDER}' (nothing was changed; "
                           f"give a new or empty folder, or move it out)")
    return manifest


def input_differences(built: dict, wanted: dict) -> List[str]:
    """What differs between the inputs of the data built and those of this command, in the user's terms."""
    def show(value):
        return ",".join(value) if isinstance(value, list) else "not given" if value is None else value

    out = []
    old, new = built.get("settings", {}), wanted["settings"]
    for key in new:
        if old.get(key) != new[key]:
            out.append(f"--{key.replace('_', '-')} {show(old.get(key))} (built) vs {show(new[key])} (now)")
    if built.get("locale_dir") != wanted["locale_dir"]:
        out.append(f"--locale-dir {built.get('locale_dir')} (built) vs {wanted['locale_dir']} (now)")
    for name, version in wanted["versions"].items():
        if built.get("versions", {}).get(name) != version:
            out.append(f"{name} {built.get('versions', {}).get(name)} (built) vs {version} (now)")
    for lang, found in wanted["catalogs"].items():
        if lang in built.get("catalogs", {}) and built["catalogs"][lang] != found:
            out.append(f"the catalogs of {lang} changed since the build")
    return out or ["the recorded inputs"]


def _up_to_date(out: Path, manifest: dict) -> bool:
    """Every file the manifest lists is in place with its recorded sha256."""
    return (out / MANIFEST).is_file() and all(
        (out / rel).is_file() and sha256_file(out / rel) == digest for rel, digest in manifest["files"].items())


def _train_sentencepiece(texts: List[str], prefix: Path, settings: Settings) -> None:
    """PREFIX.model and PREFIX.vocab: trained from memory, so that the model records no path of this build."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=settings.vocab_size, model_type="unigram",
        character_coverage=character_coverage(settings.langs), num_threads=1, hard_vocab_limit=False,
        input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
    prefix.with_suffix(".model").write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    prefix.with_suffix(".vocab").write_text("".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n"
                                                    for i in range(sp.get_piece_size())))


def _binarize(build: Path, raw: Dict[str, Dict[str, Dict[str, List[str]]]]) -> int:
    """Encode every split with the sentencepiece model, write the joint dict.txt, fairseq-preprocess each pair;
    returns the vocabulary size."""
    import sentencepiece as spm

    from .data import _preprocess

    sp = spm.SentencePieceProcessor(model_file=str(build / "spm.model"))
    pieces = build / "pieces"
    counts = collections.Counter()
    for pair, splits in raw.items():
        for split, sides in splits.items():
            for lang, lines in sides.items():
                encoded = [" ".join(p) for p in sp.encode(lines, out_type=str)]
                if split == "train":
                    counts.update(piece for line in encoded for piece in line.split())
                path = pieces / pair / f"{split}.{lang}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(line + "\n" for line in encoded))
    # every piece but sentencepiece's control symbols, which fairseq's dictionary has of its own
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
             if not (sp.is_control(i) or sp.is_unknown(i))]
    (build / "dict.txt").write_text("".join(f"{p} {counts[p]}\n" for p in vocab))
    for pair in raw:
        src, tgt = pair.split("-", 1)
        prefix = pieces / pair
        _preprocess(["--source-lang", src, "--target-lang", tgt, "--trainpref", str(prefix / "train"),
                     "--validpref", str(prefix / "valid"), "--testpref", str(prefix / "test"),
                     "--destdir", str(build / pair), "--srcdict", str(build / "dict.txt"), "--joined-dictionary",
                     "--workers", "1"])
        (build / pair / "preprocess.log").unlink(missing_ok=True)  # timestamps; the manifest has the counts
    shutil.rmtree(pieces)
    return len(vocab)


def warn(message: str) -> None:
    print(f"lth: warning: {message}", file=sys.stderr)


def split_pairs(data: Dict[str, LanguageData], settings: Settings) -> Dict[str, Dict[str, Dict[str, List[str]]]]:
    """pair -> split -> side -> lines; refuses a split that would be empty, naming the flags that decide it."""
    raw: Dict[str, Dict[str, Dict[str, List[str]]]] = {}
    for lang, d in data.items():
        pairs = _limit(d.pairs, settings.max_pairs)
        pair = f"{SOURCE_LANG}-{lang}"
        raw[pair] = {s: {SOURCE_LANG: [], lang: []} for s in SPLITS}
        for en, tr in pairs.items():
            s = split_of(en, settings.held_out_share)
            raw[pair][s][SOURCE_LANG].append(en)
            raw[pair][s][lang].append(tr)
        empty = [s for s in SPLITS if not raw[pair][s][lang]]
        if empty:
            # about 10 pairs expected in each held-out split
            enough = math.ceil(10 / settings.held_out_share)
            cause = (f"--max-pairs {settings.max_pairs}" if settings.max_pairs is not None and
                     settings.max_pairs < len(d.pairs) else f"{len(d.pairs)} pairs of {lang} (--min-pairs "
                                                            f"{settings.min_pairs})")
            raise CatalogError(
                f"{cause} with --held-out-share {settings.held_out_share} leaves the {'/'.join(empty)} split of "
                f"{pair} empty ({len(pairs)} pairs in all): give --max-pairs of at least {enough} (or leave it out), "
                f"or a larger --held-out-share (below 0.5)")
    return raw


def build(out, settings: Settings, locale_dir: Path = LOCALE_DIR, log=print) -> dict:
    """Build (or find up to date) the data of `settings` in `out`; returns the manifest. Never removes a file it
    did not write: a folder holding one, or data built from other inputs, is refused before anything changes."""
    out = Path(out)
    check_settings(settings, locale_dir)
    built = check_output_dir(out)
    langs = settings.langs
    inputs = {"settings": settings.as_dict(), "locale_dir": str(locale_dir), "versions": _versions(),
              "catalogs": {lang: [[str(p), sha256_file(p)] for p in catalog_paths(lang, locale_dir)]
                           for lang in langs}}
    if built and built.get("inputs") != inputs:
        # a rebuild would change data that models may have been trained on (a new vocabulary invalidates them)
        differences = "; ".join(input_differences(built["inputs"], inputs))
        raise CatalogError(f"{out} holds data built from other inputs: {differences}. Nothing was changed: give a "
                           f"new folder for these settings")
    if built and _up_to_date(out, built):
        log(f"{out}: up to date (same catalogs, settings and tools; every file matches {MANIFEST})")
        return built
    data = {lang: read_language(lang, locale_dir, settings.max_words, warn) for lang in langs}
    bad = {lang: d for lang, d in data.items() if len(d.pairs) < settings.min_pairs}
    if bad:
        raise CatalogError(too_few_pairs_message(bad, settings.max_words, settings.min_pairs, locale_dir))
    raw = split_pairs(data, settings)
    # the vocabulary sees training text only: each English text once, then every language's translations
    train_text = sorted({en for splits in raw.values() for en in splits["train"][SOURCE_LANG]}) + [
        t for lang in langs for t in raw[f"{SOURCE_LANG}-{lang}"]["train"][lang]]
    needed = required_pieces(train_text, character_coverage(langs))
    if settings.vocab_size < needed:
        raise CatalogError(f"--vocab-size {settings.vocab_size}: the training text needs at least {needed} pieces "
                           f"(each of its characters is one, plus {SPM_CONTROL_PIECES} control pieces); give "
                           f"{needed} or more")
    fresh = not out.exists() or not any(out.iterdir())
    created = not out.exists()
    return _write(out, lambda work: _build_in(work, settings, inputs, data, raw, train_text, log), built, fresh,
                  created)


def _build_in(work: Path, settings: Settings, inputs: dict, data: Dict[str, LanguageData], raw, train_text,
              log) -> dict:
    """Write every file of the data into `work`; returns its manifest."""
    for pair, splits in raw.items():
        for s, sides in splits.items():
            for side, lines in sides.items():
                path = work / pair / "raw" / f"{s}.{side}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(line + "\n" for line in lines))
    split_counts = {pair.split("-", 1)[1]: {s: len(sides[SOURCE_LANG]) for s, sides in splits.items()}
                    for pair, splits in raw.items()}
    english_by_split = {s: {en for splits in raw.values() for en in splits[s][SOURCE_LANG]} for s in SPLITS}
    log(f"pairs after cleaning: {', '.join(f'{lang} {sum(c.values())}' for lang, c in split_counts.items())}; "
        f"training the joint sentencepiece model")
    _train_sentencepiece(train_text, work / "spm", settings)
    log("binarizing with fairseq-preprocess")
    vocab_size = _binarize(work, raw)
    packages = debian_packages([c["path"] for d in data.values() for c in d.catalogs + d.corrupt])
    files = {str(p.relative_to(work)): sha256_file(p) for p in sorted(work.rglob("*")) if p.is_file()}
    return {
        "builder": BUILDER,
        "inputs": inputs,
        "source_lang": SOURCE_LANG,
        "cleaning": {"contexts": "dropped", "plurals": "singular pair kept (msgid, msgstr[0])",
                     "multiline": "a --help block whose every line starts with the same option on both "
                                  "sides is split into line pairs; any other message is joined into one line",
                     "removed from both sides": "accelerators, markup, placeholders (with their quotes)",
                     "english_words": [MIN_WORDS, settings.max_words],
                     "duplicates": "one pair per English text: its most frequent translation"},
        "languages": {lang: {"catalogs": [{**c, "package": packages[c["path"]][0],
                                           "version": packages[c["path"]][1]} for c in d.catalogs],
                             "corrupt": [{**c, "package": packages[c["path"]][0]} for c in d.corrupt],
                             "counts": d.counts, "splits": split_counts[lang]}
                      for lang, d in data.items()},
        "split": {"rule": f"sha256 of the English text: the first 8 bytes as a fraction x; test if x < "
                          f"{settings.held_out_share}, valid if x < {2 * settings.held_out_share}, else train",
                  "english_texts": {s: len(v) for s, v in english_by_split.items()}},
        "vocabulary": {"kind": "sentencepiece unigram, joint over English and every language's train split",
                       "requested": settings.vocab_size, "size": vocab_size, "spm.model": files["spm.model"]},
        "scoring": "sacreBLEU BLEU and chrF on detokenized output against OUT/en-X/raw/test.X "
                   "(fairseq-train's --lottery-references OUT/en-X/raw)",
        "files": files,
        "data_sha256": hashlib.sha256("".join(f"{k} {v}\n" for k, v in files.items()).encode()).hexdigest(),
    }


def _write(out: Path, build_in, built: Optional[dict], fresh: bool, created: bool) -> dict:
    """`build_in(OUT/.build)`, then its files moved into place, the manifest last. A failure leaves the folder as
    it was found (`fresh`: empty; `created`: by this call); what a kill leaves, the next run removes."""
    from lth_plugins.atomic import atomic_write_bytes, atomic_write_json
    from lth_plugins.lock import FileLock

    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        atomic_write_bytes(out / MARKER, f"{BUILDER}: this folder's data; {MANIFEST} describes it\n".encode())
    work, moving = out / BUILD_DIR, False
    try:
        with FileLock(out / f"{MARKER}.lock", f"the data folder {out}"):
            try:
                if (work / MANIFEST).is_file() and not (out / MANIFEST).exists():
                    # a build killed while moving its files in: its manifest keeps the record of which files here
                    # are this builder's, through a kill of this build too (stale or missing files fail the check
                    # of an up-to-date folder)
                    os.replace(work / MANIFEST, out / MANIFEST)
                shutil.rmtree(work, ignore_errors=True)  # what a killed build left
                work.mkdir()
                manifest = build_in(work)
                # a build killed while moving its files in is known by the manifest it was moving in: the next
                # run owns those files and redoes it
                atomic_write_json(work / MANIFEST, manifest)
                moving = True
                (out / MANIFEST).unlink(missing_ok=True)
                for rel in set(built["files"]) - set(manifest["files"]) if built else ():
                    (out / rel).unlink(missing_ok=True)  # written by this builder for the same inputs
                for rel in manifest["files"]:
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(work / rel, out / rel)
                os.replace(work / MANIFEST, out / MANIFEST)
                shutil.rmtree(work)
            except BaseException:
                if not moving:
                    shutil.rmtree(work, ignore_errors=True)
                    if fresh:
                        (out / MARKER).unlink(missing_ok=True)
                raise
    finally:
        if fresh and not (out / MARKER).exists():  # a failed build in a folder it found empty
            (out / f"{MARKER}.lock").unlink(missing_ok=True)
            if created:
                out.rmdir()
    return manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="output folder: new, empty, or built by this command with the same "
                   "options (an identical rerun is up to date; other options are refused)")
    p.add_argument("--langs", required=True, help="target languages, comma-separated, as named under "
                   f"--locale-dir (e.g. de,fr,es,sv,ru,ja,zh_CN)")
    p.add_argument("--max-words", type=int, default=MAX_WORDS,
                   help=f"longest English message kept, in words; at least {MIN_WORDS}, the shortest kept")
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE,
                   help="pieces of the joint sentencepiece model; at least the training text's distinct "
                        f"characters + {SPM_CONTROL_PIECES}")
    p.add_argument("--held-out-share", type=float, default=HELD_OUT_SHARE,
                   help="share of the English texts in valid, and again in test; above 0, below 0.5")
    p.add_argument("--max-pairs", type=int, default=None, metavar="N",
                   help="keep at most N pairs per language (a fixed subset, for quick tests); every split must "
                        "keep a pair (default: every pair)")
    p.add_argument("--min-pairs", type=int, default=MIN_PAIRS,
                   help="fewest pairs after cleaning a language must have; at least 1")
    p.add_argument("--locale-dir", type=Path, default=LOCALE_DIR,
                   help="where the catalogs are: DIR/LANG/LC_MESSAGES/*.mo")


def parse_langs(text: str) -> List[str]:
    """The target languages of --langs (comma-separated, distinct, not the source)."""
    langs = [lang.strip() for lang in text.split(",") if lang.strip()]
    if not langs or SOURCE_LANG in langs or len(set(langs)) != len(langs):
        raise CatalogError(f"--langs {text!r}: give distinct target languages other than {SOURCE_LANG}")
    return langs


def run(args: argparse.Namespace) -> int:
    langs = parse_langs(args.langs)
    settings = Settings(langs, max_words=args.max_words, min_pairs=args.min_pairs, vocab_size=args.vocab_size,
                        held_out_share=args.held_out_share, max_pairs=args.max_pairs)
    manifest = build(args.out, settings, args.locale_dir)
    for lang, info in manifest["languages"].items():
        c = info["splits"]
        print(f"{SOURCE_LANG}-{lang}: {c['train']} train, {c['valid']} valid, {c['test']} test pairs "
              f"({len(info['catalogs'])} catalogs, {len(info['corrupt'])} corrupt skipped)")
    print(f"vocabulary: {manifest['vocabulary']['size']} pieces; data sha256 {manifest['data_sha256']}")
    return 0
