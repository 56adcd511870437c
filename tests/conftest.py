import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# the CI gate: skipped tests of the frameworks .ci/run requires (FLARE, ELF, SLURM) fail the run
from .ci_gate import (pytest_collectreport, pytest_itemcollected, pytest_runtest_logreport,  # noqa: E402,F401
                      pytest_sessionfinish, pytest_terminal_summary)
from .slurm_cluster import slurm_cluster, slurm_nodes  # noqa: E402,F401  (the local SLURM, for tests that submit jobs)


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(config, items):
    """The GPU dry run (minutes of builds that wait on nothing) starts now, beside the other tests, and its test
    runs last to check what it left."""
    from . import test_gpu_checks as gpu

    dry = [item for item in items if item.name == gpu.DRY_RUN_TEST]
    if dry and gpu.ENABLED and len(items) > 1:
        items.remove(dry[0])
        items.append(dry[0])
        gpu.start_in_background()


def pytest_unconfigure(config):
    from . import test_gpu_checks as gpu

    gpu.stop_background()  # an interrupted session leaves no build running
