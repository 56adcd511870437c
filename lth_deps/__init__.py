"""Installable wheels of frameworks that are on no package registry (FLARE, ELF), built from an upstream tree.

A framework adapter subclasses `SourceBuild` and registers it under ``lth_plugins.builds``; ``lth deps build NAME
--source DIR_OR_TARBALL`` reads the source (`source`), takes the wheel from the keyed cache or builds it there
(`cache`, `pipeline`; the builder edits a private copy with `edits` and may pack files with `wheel`), and installs it
(`install`). System packages are only checked (`system`); ``scripts/setup.sh`` installs them.
"""
from .builder import SourceBuild, available_builders, load_builder
from .pipeline import BuildResult, build
from .steps import BuildError, BuildLog, run_step

__all__ = ["SourceBuild", "BuildError", "BuildLog", "BuildResult", "build", "available_builders", "load_builder",
           "run_step"]
