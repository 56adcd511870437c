"""FLARE's --lottery-transfer-from: the flags make a transferred ticket; a real one trains a CartPole-v0 ticket on
Acrobot-v1, whose input layer and action head have other shapes (when FLARE is installed)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flare_ext.a2c import parse_args
from lth_plugins.hparams import Ticket

REPO = Path(__file__).resolve().parents[2]
TINY = ["--epochs", "2", "--games-per-epoch", "4", "--last-games", "4", "--agents", "2", "--hidden", "32,32,32",
        "--lr", "1e-3", "--lottery-prune", "--lottery-rounds", "1"]


def test_the_transfer_flags_reach_the_lottery_configuration():
    a = parse_args(["--lottery-prune", "--game", "Acrobot-v1", "--lottery-transfer-from", "runs/cartpole/wt:2",
                    "--lottery-transfer-keep-dense", "policy_net.1.*", "--lottery-transfer-keep-dense",
                    "value_net.0.0.*", "--lottery-rounds", "3"])
    c = a.lottery.validate(total_epochs=a.epochs)
    assert c.ticket is Ticket.TRANSFERRED and c.source_dir == os.path.abspath("runs/cartpole/wt") and c.first_round == 2
    assert c.transfer_keep_dense == ("policy_net.1.*", "value_net.0.0.*")
    assert a.run_dir == os.path.join("runs", "flare_Acrobot-v1_s0_transferred")


def _train(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "flare_ext.a2c", *TINY, *args], capture_output=True, text=True,
                       env=env, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-4000:]


@pytest.mark.skipif(importlib.util.find_spec("flare") is None, reason="needs flare-rl (lth deps build flare)")
def test_a_cartpole_ticket_trains_on_acrobot_with_its_input_layer_and_action_head_dense(tmp_path):
    _train("--game", "CartPole-v0", "--seed", "0", "--run-dir", str(tmp_path / "wt"))
    # 4 observations and 2 actions there, 6 and 3 here: the layers of other shapes train dense from this run's init
    _train("--game", "Acrobot-v1", "--seed", "1", "--run-dir", str(tmp_path / "tt"), "--lottery-transfer-from",
           str(tmp_path / "wt"), "--lottery-transfer-keep-dense", "*.0.0.weight", "--lottery-transfer-keep-dense",
           "policy_net.1.*")
    rec = json.loads((tmp_path / "tt" / "round_01" / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "wt" / "round_01" / "metrics.json").read_text())
    assert rec["ticket"] == "transferred" and rec["metrics"]["games"] == 4
    assert rec["start"] == theirs["start"]  # the source's late point, after epoch 1
    density = json.loads((tmp_path / "tt" / "round_01" / "sparsity.json").read_text())["density"]
    assert "policy_net.1.weight" not in density and "policy_net.0.0.weight" not in density
    assert density == {n: d for n, d in json.loads((tmp_path / "wt" / "round_01" / "sparsity.json").read_text())[
        "density"].items() if n in density} and len(density) == 7  # the 7 others: the source's masks
    assert not (tmp_path / "tt" / "round_00").exists()
