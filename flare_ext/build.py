"""``lth deps build flare --source DIR_OR_TARBALL``: the ``flare-rl`` wheel (FLARE's ``flare`` package) from an
upstream tree of github.com/idlrl/flare, which ships no packaging of its own.

On the private copy lth_deps hands over, this builder makes the edits of ``EDITS`` (each with its reason) and
adds ``setup.py`` (FLARE has none): distribution ``flare-rl``, the ``flare`` packages without their unit-test
folders, requiring ``torch`` and ``numpy``.

Left as upstream has it: ``flare/env_zoo/gym_env.py`` (``GymEnv``) imports the old ``gym`` and
``scipy.misc.imresize``; its old reset/step API differs from gymnasium's in behaviour, not spelling, so the
adapter hands FLARE its own ``flare_ext.env.GymnasiumEnv`` instead (nothing in the adapter imports ``gym_env``).
The ``fork`` start method FLARE's agents need stays a run-time setting of the adapter
(``flare_compat.use_fork_start_method``): it is a process-wide choice of the program that starts FLARE, and
``import flare`` setting it would change every other program that imports flare.
"""
import os
import sys
from pathlib import Path

from lth_deps import BuildError, SourceBuild, run_step
from lth_deps.edits import Edit, apply_edits

FLARE_URL = "https://github.com/idlrl/flare"
FLARE_COMMIT = "33b71b4"

SETUP_PY = '''\
# Written by lth-plugins' flare_ext/build.py: FLARE ships no packaging of its own.
from setuptools import find_packages, setup

setup(
    name="flare-rl",
    version="0.0.0",
    description="FLARE (github.com/idlrl/flare) built by lth-plugins from an upstream tree (tested at {commit})",
    url="{url}",
    license="Apache-2.0",
    packages=find_packages(include=["flare", "flare.*"], exclude=["*.tests", "*.tests.*"]),
    install_requires=["torch", "numpy"],
)
'''

EDITS = [
    Edit("flare/framework/common_functions.py", "from collections import Iterable\n",
         "from collections.abc import Iterable\n",
         "collections.Iterable was removed in Python 3.10; FLARE fails to import without it"),
]


class FlareBuild(SourceBuild):
    name = "flare"
    dist_name = "flare-rl"
    expected_commit = FLARE_COMMIT
    apt_packages = []

    def identify(self, tree):
        tree = Path(tree)
        needed = ["flare/__init__.py", "flare/framework/manager.py", "flare/agent_zoo/simple_rl_agents.py"]
        missing = [p for p in needed if not (tree / p).is_file()]
        if missing:
            hint = ""
            if (tree / "framework" / "manager.py").is_file():
                hint = f"; that is FLARE's package folder, give its parent {tree.parent}"
            raise BuildError(f"{tree} is not a FLARE tree ({FLARE_URL}): no {', '.join(missing)}{hint}")

    def build_wheel(self, tree, wheel_dir, log):
        apply_edits(tree, EDITS, f"FLARE {FLARE_COMMIT}", log)
        if (Path(tree) / "setup.py").exists():
            raise BuildError(f"{tree} already has a setup.py; this FLARE differs from {FLARE_COMMIT}")
        (Path(tree) / "setup.py").write_text(SETUP_PY.format(commit=FLARE_COMMIT, url=FLARE_URL))
        env = dict(os.environ, SOURCE_DATE_EPOCH="315532800")  # fixed timestamps inside the wheel
        run_step([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", str(wheel_dir), str(tree)], log, cwd=tree, env=env, what="pip wheel flare-rl")
        wheels = list(Path(wheel_dir).glob("*.whl"))
        return wheels[0] if len(wheels) == 1 else None
