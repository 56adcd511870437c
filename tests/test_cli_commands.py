"""`lth` subcommands come from the `lth_plugins.commands` entry points; the core imports no adapter."""
import re
import subprocess
import sys
from pathlib import Path

from lth_plugins import commands

CORE = Path(__file__).resolve().parents[1] / "lth_plugins"


def test_adapters_register_their_own_subcommands():
    loaded = commands.load_commands()
    assert {"status", "plugins", "report", "demo-core"} <= set(loaded)
    assert type(loaded["demo"]).__module__ == "fairseq_ext.commands"
    assert type(loaded["fairseq-user-dir"]).__module__ == "fairseq_ext.commands"


def test_core_source_names_no_adapter():
    offenders = [str(p) for p in CORE.rglob("*.py")
                 if re.search(r"\b(fairseq_ext|flare_ext|elf_ext)\b", p.read_text())]
    assert offenders == []


def test_building_the_parser_imports_no_framework():
    code = ("import sys; from lth_plugins import cli; cli.build_parser(); "
            "print(sorted(m for m in ('fairseq', 'flare', 'rlpytorch', 'gymnasium') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fairseq_user_dir_command_prints_the_adapter_path():
    out = subprocess.run([sys.executable, "-m", "lth_plugins.cli", "fairseq-user-dir"], capture_output=True,
                         text=True, check=True)
    assert (Path(out.stdout.strip()) / "driver.py").is_file()
