"""fairseq's own SLURM initialisation on one GPU: fairseq-train with --lottery-prune under the variables `srun`
sets for one task on one node, so `infer_init_method` takes its SLURM path (tcp:// on the node `scontrol show
hostnames` names, one process per GPU) and the lottery round runs in that process group.

    python benchmarks/gpu_slurm_init.py              # a GPU: a lottery round (round 0 and 1, tiny Transformer)
    python benchmarks/gpu_slurm_init.py --dry-run    # no CUDA: the init method fairseq infers, nothing trained

The machine has no SLURM: a stand-in `scontrol` answers `show hostnames` with this host's name.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairseq_ext import USER_DIR, demo, train_command  # noqa: E402
from fairseq_ext.data import make_translation_data  # noqa: E402

PORT = 29517


def slurm_env(tmp: Path) -> dict:
    """The environment of task 0 of a one-node, one-task job, with the stand-in scontrol first on PATH."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && exec hostname\n'
                        'echo "stand-in scontrol: only show hostnames" >&2; exit 1\n')
    scontrol.chmod(0o755)
    host = socket.gethostname()
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SLURM_JOB_ID="4242",
                SLURM_JOB_NODELIST=host, SLURM_STEP_NODELIST=host, SLURM_NNODES="1", SLURM_NTASKS="1",
                SLURM_NTASKS_PER_NODE="1", SLURM_NODEID="0", SLURM_PROCID="0", SLURM_LOCALID="0")


def lottery_args(data: Path, save: Path) -> list:
    common = [c for c in demo.COMMON if c != "--cpu"]
    return [*demo.MODEL, *common, *demo.schedule_args(40), "--log-interval", "10", "--save-dir", str(save),
            "--user-dir", USER_DIR, "--lottery-prune", "--lottery-rounds", "1", "--lottery-rate", "0.2",
            "--lottery-reset", "init", "--distributed-port", str(PORT),
            # fairseq skips its SLURM branch at world size 1; with one task per node it then sets the world size to
            # nodes x GPUs (1 here) and spawns one process per GPU
            "--distributed-world-size", "2"]


def dry_run(data: Path, tmp: Path) -> int:
    """Parse the same command line and let fairseq infer its init method under the same variables."""
    code = ("import sys; from fairseq import options;"
            " from fairseq.dataclass.utils import convert_namespace_to_omegaconf;"
            " from fairseq.distributed import utils; import fairseq_ext; fairseq_ext.install();"
            " p = options.get_training_parser(); cfg = convert_namespace_to_omegaconf("
            "options.parse_args_and_arch(p, sys.argv[1:]));"
            # fairseq's own function: the plugin's wrapper takes another path where CUDA is missing
            " getattr(utils.infer_init_method, '__wrapped__', utils.infer_init_method)(cfg.distributed_training);"
            " print('init method', cfg.distributed_training.distributed_init_method)")
    p = subprocess.run([sys.executable, "-c", code, str(data), *lottery_args(data, tmp / "save")],
                       env=dict(slurm_env(tmp), PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get(
                           "PYTHONPATH", "")])), cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    print(p.stdout[-3000:])
    expected = f"init method tcp://{socket.gethostname()}:{PORT}"
    if p.returncode != 0 or expected not in p.stdout:
        print(f"fairseq did not infer {expected!r} from SLURM's variables")
        return 1
    print(f"SLURM path taken: {expected}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="no CUDA: check the inferred init method only")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gpu_slurm_init_"))
    data = make_translation_data(tmp / "data", seed=0, n_train=2000, n_valid=100, n_test=100)
    if a.dry_run:
        sys.exit(dry_run(data, tmp))
    p = subprocess.run(train_command(data, *lottery_args(data, tmp / "save")), env=slurm_env(tmp), cwd=ROOT,
                       text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = p.stdout.splitlines()
    for line in lines:
        if "distributed init" in line or "[lottery]" in line or "Traceback" in line or "Error" in line:
            print(line)
    if p.returncode != 0:
        print("\n".join(lines[-40:]))
    print(f"fairseq-train under SLURM's variables: exit code {p.returncode}")
    sys.exit(p.returncode)


if __name__ == "__main__":
    main()
