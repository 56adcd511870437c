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
