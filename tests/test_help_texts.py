"""Every `--help` mentions only flags its own parser has, and states a default at most once per option.

The commands: `lth` and every `lth` subcommand (nested ones too), `python -m lth_plugins.demo`,
`python -m flare_ext.a2c`, `fairseq-train --user-dir $(lth fairseq-user-dir)` (its lottery groups: their text may
name any fairseq flag) and `python -m elf_ext.train`. Flags inside quotes or backticks belong to another command
(an example such as `--generate-args '--beam 4'`) and are not checked."""
import argparse
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from lth_plugins import cli

WIDE = {"COLUMNS": "1000"}  # one line per option: argparse wraps at hyphens, which would split flag names
FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
OPTION_LINE = re.compile(r"^ {2}(-[^ ].*?)(?: {2,}(.*))?$")  # "  --flag VALUE   help" (help may be absent)
DEFAULT = re.compile(r"\bdefault:", re.IGNORECASE)


def parse_help(text):
    """(real flags, [(where, text that may mention flags)], [(option, its help)]) of one --help output."""
    real, prose, options = set(), [], []
    current = None
    for line in text.splitlines():
        m = OPTION_LINE.match(line)
        if m:
            invocation, help_text = m.group(1), m.group(2) or ""
            real.update(f.split("=")[0] for f in FLAG.findall(invocation))
            current = [invocation.split(",")[-1].split()[0], help_text]
            options.append(current)
        elif line.startswith(" " * 3) and current is not None:  # the help of an option, on its own line
            current[1] = (current[1] + " " + line.strip()).strip()
        else:
            current = None
            if not line.startswith("usage:") and not line.startswith(" " * 6):  # usage continues indented
                prose.append(("description", line))
    prose += [(name, help_text) for name, help_text in options]
    return real, prose, options


def mentioned_flags(text):
    return {f for f in FLAG.findall(QUOTED.sub("", text)) if f.startswith("--")}


def check(command, text, real=None, keep=lambda where: True):
    parsed_real, prose, options = parse_help(text)
    real = parsed_real if real is None else real
    unknown = sorted({(where, f) for where, body in prose if keep(where)
                      for f in mentioned_flags(body) if f not in real})
    assert unknown == [], f"{command}: help mentions flags it does not have: {unknown}"
    twice = [name for name, help_text in options if keep(name) and len(DEFAULT.findall(help_text)) > 1]
    assert twice == [], f"{command}: a default stated twice in the help of {twice}"


def run_help(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, **WIDE})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def lth_parsers(parser, name="lth"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from lth_parsers(subparser, f"{name} {sub}")


def test_lth_and_every_subcommand(monkeypatch):
    monkeypatch.setenv("COLUMNS", WIDE["COLUMNS"])
    names = []
    for name, parser in lth_parsers(cli.build_parser()):
        check(f"{name} --help", parser.format_help())
        names.append(name)
    assert {"lth", "lth sweep", "lth demo", "lth report", "lth data catalogs", "lth deps build"} <= set(names)


def test_lth_help_as_run():
    check("lth --help", run_help([sys.executable, "-m", "lth_plugins.cli", "--help"]))


def test_the_torch_demo():
    text = run_help([sys.executable, "-m", "lth_plugins.demo", "--help"])
    assert "--lottery-masks-from" in text
    check("python -m lth_plugins.demo --help", text)


@pytest.mark.skipif(importlib.util.find_spec("flare") is None, reason="FLARE is not installed (lth deps build flare)")
def test_flare():
    text = run_help([sys.executable, "-m", "flare_ext.a2c", "--help"])
    assert "--lottery-masks-from" in text
    check("python -m flare_ext.a2c --help", text)


def test_fairseq_lottery_groups():
    pytest.importorskip("fairseq")
    user_dir = run_help([sys.executable, "-m", "lth_plugins.cli", "fairseq-user-dir"]).strip()
    code = "import sys; sys.argv[0] = 'fairseq-train'; from fairseq_cli.train import cli_main; cli_main()"
    text = run_help([sys.executable, "-c", code, "--user-dir", user_dir, "--help"])
    real, _, _ = parse_help(text)
    # only the lottery groups are ours: keep the lines from a "lottery ..." group title to the next title
    ours, inside = [], False
    for line in text.splitlines():
        if line and not line.startswith(" "):
            inside = line.startswith("lottery")
        elif inside:
            ours.append(line)
    assert any("--lottery-masks-from" in line for line in ours) and any("--lottery-prune" in line for line in ours)
    check("fairseq-train --help (lottery groups)", "\n".join(ours), real=real)


@pytest.mark.skipif(importlib.util.find_spec("rlpytorch") is None, reason="ELF is not installed (lth deps build elf)")
def test_elf():
    text = run_help([sys.executable, "-m", "elf_ext.train", "--help"])
    assert "--lottery_masks_from" in text
    check("python -m elf_ext.train --help", text)


def test_the_checker_sees_a_made_up_flag_and_a_default_stated_twice():
    parser = argparse.ArgumentParser(prog="x", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rate", default=0.2, help="the rate (default: 0.2)")
    parser.add_argument("--ticket", help="random: masks from --masks-from; example: '--beam 4' is another's")
    text = parser.format_help()
    with pytest.raises(AssertionError, match=r"--masks-from"):
        check("x", text.replace("(default: 0.2) (default: 0.2)", ""))
    with pytest.raises(AssertionError, match="default stated twice"):
        check("x", text.replace("--masks-from", "--rate"))
