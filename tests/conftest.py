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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The GPU dry run's test runs last: it checks what the dry run, started beside the other tests, left."""
    from . import test_gpu_checks as gpu

    dry = [item for item in items if item.name == gpu.DRY_RUN_TEST]
    if dry:
        items.remove(dry[0])
        items.append(dry[0])


def pytest_collection_finish(session):
    """The GPU dry run (minutes of builds that wait on nothing) starts once every plugin chose the tests, if its
    test is among them with others to run beside it."""
    from . import test_gpu_checks as gpu

    chosen = [item for item in session.items if item.name == gpu.DRY_RUN_TEST]
    if chosen and gpu.ENABLED and len(session.items) > 1 and not session.config.option.collectonly:
        gpu.start_in_background()


def pytest_unconfigure(config):
    from . import test_gpu_checks as gpu

    gpu.stop_background()  # an interrupted session leaves no build running
