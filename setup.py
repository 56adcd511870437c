from setuptools import find_packages, setup

setup(
    name="lth-plugins",
    version="0.1.0",
    description="Lottery-ticket pruning (Yu et al., ICLR 2020) as plugins for fairseq, FLARE and ELF",
    packages=find_packages(include=["lth_plugins*", "fairseq_ext*", "flare_ext*", "elf_ext*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.1", "numpy", "stevedore>=5"],
    extras_require={
        "fairseq": ["fairseq-fixed==0.12.3.1", "sacrebleu>=2", "sacremoses"],
        "rl": ["gymnasium>=1.0", "box2d==2.3.10", "pygame>=2.1.3"],
        "report": ["matplotlib>=3.5"],
        "sweep": ["submitit>=1.5", "tomli>=1.1; python_version < '3.11'"],
        "dev": ["pytest", "matplotlib>=3.5"],
    },
    entry_points={
        "console_scripts": ["lth = lth_plugins.cli:main"],
        "lth_plugins.pruners": [
            "global_magnitude = lth_plugins.pruners:GlobalMagnitude",
            "layerwise_magnitude = lth_plugins.pruners:LayerwiseMagnitude",
            "random = lth_plugins.pruners:RandomPruner",
        ],
        "lth_plugins.resets": [
            "init = lth_plugins.resets:InitReset",
            "late = lth_plugins.resets:LateReset",
            "random = lth_plugins.resets:RandomReinit",
        ],
        "lth_plugins.commands": [
            "status = lth_plugins.commands:StatusCommand",
            "plugins = lth_plugins.commands:PluginsCommand",
            "report = lth_plugins.commands:ReportCommand",
            "demo-core = lth_plugins.commands:DemoCoreCommand",
            "deps = lth_plugins.commands:DepsCommand",
            "sweep = lth_plugins.commands:SweepCommand",
            "demo = fairseq_ext.commands:DemoCommand",
            "fairseq-user-dir = fairseq_ext.commands:FairseqUserDirCommand",
            "elf-model-file = elf_ext.commands:ElfModelFileCommand",
            "elf-game-file = elf_ext.commands:ElfGameFileCommand",
        ],
        "lth_plugins.builds": [
            "flare = flare_ext.build:FlareBuild",
            "elf = elf_ext.build:ElfBuild",
        ],
        "lth_plugins.sweep_targets": [
            "torch = lth_plugins.sweep.targets:TorchTarget",
            "flare = flare_ext.sweep:FlareTarget",
            "fairseq = fairseq_ext.sweep:FairseqTarget",
        ],
        "lth_plugins.frameworks": [
            "torch = lth_plugins.demo",
            "flare = flare_ext.a2c",
            "fairseq = fairseq_ext",
            "elf = elf_ext.train",
        ],
    },
)
