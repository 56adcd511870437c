import runpy
from pathlib import Path

from setuptools import find_packages, setup

# The core's own plugins are listed once, in lth_plugins/plugin_table.py (plain data, read without importing the
# package); the adapters' entries follow here.
TABLE = runpy.run_path(str(Path(__file__).parent / "lth_plugins" / "plugin_table.py"))
core = TABLE["entry_point_lines"]

setup(
    name="lth-plugins",
    version="0.1.0",
    description="Lottery-ticket pruning (Yu et al., ICLR 2020) as plugins for fairseq, FLARE and ELF",
    packages=find_packages(include=["lth_plugins*", "lth_deps*", "fairseq_ext*", "flare_ext*", "elf_ext*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.1", "numpy"],
    extras_require={
        "fairseq": ["fairseq-fixed==0.12.3.1", "sacrebleu>=2", "sacremoses", "sentencepiece", "polib"],
        "rl": ["gymnasium>=1.0", "box2d==2.3.10", "pygame>=2.1.3"],
        "report": ["matplotlib>=3.5"],
        "sweep": ["submitit>=1.5", "tomli>=1.1; python_version < '3.11'"],
        "dev": ["pytest", "matplotlib>=3.5"],
    },
    entry_points={
        "console_scripts": ["lth = lth_plugins.cli:main"],
        "lth_plugins.pruners": core("lth_plugins.pruners"),
        "lth_plugins.resets": core("lth_plugins.resets"),
        "lth_plugins.zero_preserving_optimizers": core("lth_plugins.zero_preserving_optimizers") + [
            "fairseq_adam = fairseq.optim.adam:Adam",
        ],
        "lth_plugins.commands": core("lth_plugins.commands") + [
            "deps = lth_deps.commands:DepsCommand",
            "demo = fairseq_ext.commands:DemoCommand",
            "data = fairseq_ext.commands:DataCommand",
            "fairseq-user-dir = fairseq_ext.commands:FairseqUserDirCommand",
            "elf-model-file = elf_ext.commands:ElfModelFileCommand",
            "elf-game-file = elf_ext.commands:ElfGameFileCommand",
        ],
        "lth_plugins.builds": [
            "flare = flare_ext.build:FlareBuild",
            "elf = elf_ext.build:ElfBuild",
        ],
        "lth_plugins.sweep_targets": core("lth_plugins.sweep_targets") + [
            "flare = flare_ext.sweep:FlareTarget",
            "fairseq = fairseq_ext.sweep:FairseqTarget",
            "elf = elf_ext.sweep:ElfTarget",
        ],
        "lth_plugins.frameworks": core("lth_plugins.frameworks") + [
            "flare = flare_ext.a2c",
            "fairseq = fairseq_ext",
            "elf = elf_ext.train",
        ],
    },
)
