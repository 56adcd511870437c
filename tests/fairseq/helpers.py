"""Real fairseq runs on tiny generated data, each in a subprocess with one thread."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_DIR = str(ROOT / "fairseq_ext")
BIN = Path(sys.executable).parent

fairseq = pytest.importorskip("fairseq")


def env():
    e = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    e.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    e.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
    return e


COMMON = ["--cpu", "--num-workers", "0", "--no-progress-bar", "--log-interval", "50", "--seed", "1",
          "--no-epoch-checkpoints"]

MT_MODEL = ["--task", "translation", "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
            "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
            "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
            "--share-all-embeddings", "--dropout", "0.1", "--optimizer", "adam", "--lr", "0.005",
            "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "30", "--max-tokens", "2000",
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1"]

LSTM_MODEL = ["--task", "language_modeling", "--arch", "lstm_lm", "--decoder-embed-dim", "32",
              "--decoder-hidden-size", "32", "--decoder-out-embed-dim", "32", "--decoder-layers", "2",
              "--dropout", "0.2", "--tokens-per-sample", "20", "--sample-break-mode", "none", "--batch-size", "16",
              "--optimizer", "adam", "--adam-betas", "(0.9,0.999)", "--adam-eps", "1e-3", "--lr", "0.003",
              "--criterion", "cross_entropy"]

TLM_MODEL = ["--task", "language_modeling", "--arch", "transformer_lm", "--decoder-layers", "1",
             "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
             "--tokens-per-sample", "20", "--sample-break-mode", "none", "--batch-size", "16", "--optimizer", "adam",
             "--lr", "0.003", "--criterion", "cross_entropy", "--share-decoder-input-output-embed"]


def fairseq_train(data, save_dir, *args, user_dir=True, check=True, timeout=600, extra_env=None, cpu=True):
    common = COMMON if cpu else [a for a in COMMON if a != "--cpu"]
    cmd = [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save_dir), *common, *args]
    if user_dir:
        cmd += ["--user-dir", USER_DIR]
    e = env()
    e.update(extra_env or {})
    proc = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"fairseq-train failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


def fairseq_train_popen(data, save_dir, *args, log=None):
    cmd = [str(BIN / "fairseq-train"), str(data), "--save-dir", str(save_dir), *COMMON, *args,
           "--user-dir", USER_DIR]
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env(), stdout=out, stderr=subprocess.STDOUT)


def metrics(run_dir, k):
    return json.loads((Path(run_dir) / f"round_{k:02d}" / "metrics.json").read_text())


def load_mask(run_dir, k):
    from lth_plugins.masks import Mask
    return Mask.load(Path(run_dir) / f"round_{k:02d}" / "mask.lthm")


def load_ckpt(path):
    import torch
    # weights_only=True: what plain fairseq on torch >= 2.6 does without environment variables
    return torch.load(path, map_location="cpu", weights_only=True)
