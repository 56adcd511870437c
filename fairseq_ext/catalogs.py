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

One split for all languages: an English text's split depends only on that text (a hash of it), so no test
sentence of one language is a training sentence of another, whatever languages a build holds.
"""
import argparse
import collections
import hashlib
import html
import json
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


def missing_catalogs_message(bad: Dict[str, LanguageData], min_pairs: int, locale_dir: Path) -> str:
    """One error for every language with too few catalogs: what was found and which packages provide them."""
    lines = [f"too few gettext catalogs for {', '.join(bad)} (at least {min_pairs} pairs after cleaning needed):"]
    for lang, data in bad.items():
        lines.append(f"  {lang}: {len(data.catalogs)} catalogs under {Path(locale_dir) / lang / 'LC_MESSAGES'}, "
                     f"{len(data.pairs)} pairs")
    installed = installed_packages(CATALOG_PACKAGES)
    missing = [p for p in CATALOG_PACKAGES if p not in installed]
    lines.append("Debian has no language packs: each package ships its own translations. "
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


def _owned(out: Path) -> bool:
    return (out / MARKER).exists()


def check_output_dir(out: Path) -> None:
    """Refuse a folder that holds anything but this builder's output."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _owned(out))):
        raise CatalogError(f"{out} holds other data; give an empty or new folder, or one this command built")


def _file_hashes(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def _up_to_date(out: Path, inputs: dict) -> bool:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("inputs") != inputs:
        return False
    files = {k: v for k, v in _file_hashes(out).items() if k != MANIFEST}
    return files == manifest.get("files")


def _train_sentencepiece(texts: List[str], prefix: Path, settings: Settings) -> None:
    """PREFIX.model and PREFIX.vocab: trained from memory, so that the model records no path of this build."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    cjk = any(lang.split("_")[0] in CJK_LANGS for lang in settings.langs)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=settings.vocab_size, model_type="unigram",
        character_coverage=CJK_CHARACTER_COVERAGE if cjk else 1.0, num_threads=1, hard_vocab_limit=False,
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


def build(out, settings: Settings, locale_dir: Path = LOCALE_DIR, log=print) -> dict:
    """Build (or find up to date) the data of `settings` in `out`; returns the manifest."""
    from lth_plugins.atomic import atomic_write_bytes, atomic_write_json
    from lth_plugins.lock import FileLock

    out = Path(out)
    check_output_dir(out)
    langs = settings.langs
    inputs = {"settings": settings.as_dict(), "locale_dir": str(locale_dir), "versions": _versions(),
              "catalogs": {lang: [[str(p), sha256_file(p)] for p in catalog_paths(lang, locale_dir)]
                           for lang in langs}}
    if _up_to_date(out, inputs):
        log(f"{out}: up to date (same catalogs, settings and tools; every file matches {MANIFEST})")
        return json.loads((out / MANIFEST).read_text())
    data = {lang: read_language(lang, locale_dir, settings.max_words, warn) for lang in langs}
    bad = {lang: d for lang, d in data.items() if len(d.pairs) < settings.min_pairs}
    if bad:
        raise CatalogError(missing_catalogs_message(bad, settings.min_pairs, locale_dir))
    out.mkdir(parents=True, exist_ok=True)
    if not _owned(out):
        atomic_write_bytes(out / MARKER, f"{BUILDER}: this folder's data; {MANIFEST} describes it\n".encode())
    with FileLock(out / f"{MARKER}.lock", f"the data folder {out}"):
        work = out / BUILD_DIR
        shutil.rmtree(work, ignore_errors=True)  # what a killed build left
        work.mkdir()
        raw: Dict[str, Dict[str, Dict[str, List[str]]]] = {}
        english_by_split = {s: set() for s in SPLITS}
        split_counts = {}
        for lang, d in data.items():
            pairs = _limit(d.pairs, settings.max_pairs)
            pair = f"{SOURCE_LANG}-{lang}"
            raw[pair] = {s: {SOURCE_LANG: [], lang: []} for s in SPLITS}
            for en, tr in pairs.items():
                s = split_of(en, settings.held_out_share)
                raw[pair][s][SOURCE_LANG].append(en)
                raw[pair][s][lang].append(tr)
                english_by_split[s].add(en)
            split_counts[lang] = {s: len(raw[pair][s][lang]) for s in SPLITS}
            for s, sides in raw[pair].items():
                for side, lines in sides.items():
                    path = work / pair / "raw" / f"{s}.{side}"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("".join(line + "\n" for line in lines))
        log(f"pairs after cleaning: {', '.join(f'{lang} {sum(c.values())}' for lang, c in split_counts.items())}; "
            f"training the joint sentencepiece model")
        # the vocabulary sees training text only: each English text once, then every language's translations
        train_text = sorted(english_by_split["train"]) + [
            t for lang in langs for t in raw[f"{SOURCE_LANG}-{lang}"]["train"][lang]]
        _train_sentencepiece(train_text, work / "spm", settings)
        log("binarizing with fairseq-preprocess")
        vocab_size = _binarize(work, raw)
        packages = debian_packages([c["path"] for d in data.values() for c in d.catalogs + d.corrupt])
        files = _file_hashes(work)
        manifest = {
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
                       "(fairseq_ext.catalogs.score)",
            "files": files,
            "data_sha256": hashlib.sha256("".join(f"{k} {v}\n" for k, v in files.items()).encode()).hexdigest(),
        }
        # swap the new data in: without a manifest until every file is in place, so a killed swap is rebuilt
        (out / MANIFEST).unlink(missing_ok=True)
        old = [p for p in out.iterdir() if p.name not in (MARKER, f"{MARKER}.lock", BUILD_DIR)]
        for p in old:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        for p in sorted(work.iterdir()):
            os.replace(p, out / p.name)
        atomic_write_json(out / MANIFEST, manifest)
        shutil.rmtree(work)
    return manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="output folder (new, empty, or built by this command before)")
    p.add_argument("--langs", required=True, help="target languages, comma-separated, as named under "
                   f"{LOCALE_DIR} (e.g. de,fr,es,sv,ru,ja,zh_CN)")
    p.add_argument("--max-words", type=int, default=MAX_WORDS,
                   help=f"longest English message kept, in words (the shortest: {MIN_WORDS})")
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE, help="pieces of the joint sentencepiece model")
    p.add_argument("--held-out-share", type=float, default=HELD_OUT_SHARE,
                   help="share of the English texts in valid, and again in test")
    p.add_argument("--max-pairs", type=int, default=None, metavar="N",
                   help="keep at most N pairs per language (a fixed subset, for quick tests)")
    p.add_argument("--min-pairs", type=int, default=MIN_PAIRS,
                   help="fewest pairs after cleaning a language must have")
    p.add_argument("--locale-dir", type=Path, default=LOCALE_DIR, help="where the catalogs are")


def run(args: argparse.Namespace) -> int:
    langs = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    if not langs or SOURCE_LANG in langs or len(set(langs)) != len(langs):
        raise CatalogError(f"--langs {args.langs!r}: give distinct target languages other than {SOURCE_LANG}")
    settings = Settings(langs, max_words=args.max_words, min_pairs=args.min_pairs, vocab_size=args.vocab_size,
                        held_out_share=args.held_out_share, max_pairs=args.max_pairs)
    manifest = build(args.out, settings, args.locale_dir)
    for lang, info in manifest["languages"].items():
        c = info["splits"]
        print(f"{SOURCE_LANG}-{lang}: {c['train']} train, {c['valid']} valid, {c['test']} test pairs "
              f"({len(info['catalogs'])} catalogs, {len(info['corrupt'])} corrupt skipped)")
    print(f"vocabulary: {manifest['vocabulary']['size']} pieces; data sha256 {manifest['data_sha256']}")
    print(f"train with: fairseq-train {Path(args.out) / (SOURCE_LANG + '-' + langs[0])} ... "
          f"(score detokenized output with fairseq_ext.catalogs.score)")
    return 0
