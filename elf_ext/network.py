"""The paper's Atari network (Table 1) as an ELF model: four Conv-ReLU-MaxPool(2) blocks, MLP 1920-512-512,
a softmax policy head and a value head.

ELF's frames are 210x160 RGB screens sampled every 2nd pixel (3 x 105 x 80), ``hist_len`` of them stacked;
the four 2x2 max-pools take 105x80 to 6x5, so the trunk ends in 64 x 6 x 5 = 1920 features.
"""
import torch
import torch.nn as nn
from rlpytorch import Model

CHANNELS = 64
HIDDEN = 512


def conv_out(size: int, pools: int = 4) -> int:
    """Spatial size after `pools` 2x2 max-pools (stride 2, floor); the convolutions keep the size."""
    for _ in range(pools):
        size //= 2
    return size


class LotteryAtariNet(Model):
    """Conv(5,64,1,2)-MaxPool(2)-Conv(5,64,1,2)-MaxPool(2)-Conv(3,64,1,1)-MaxPool(2)-Conv(3,64,1,1)-MaxPool(2)
    -MLP(1920-512-512-out), ReLU activations; outputs ELF's ``pi`` (probabilities) and ``V``."""

    def __init__(self, args):
        super().__init__(args)
        params = args.params
        in_channels = 3 * params["hist_len"]
        height, width = params.get("feature_height", 105), params.get("feature_width", 80)
        self.linear_dim = CHANNELS * conv_out(height) * conv_out(width)
        layers, c = [], in_channels
        for kernel, pad in ((5, 2), (5, 2), (3, 1), (3, 1)):
            layers += [nn.Conv2d(c, CHANNELS, kernel, stride=1, padding=pad), nn.ReLU(), nn.MaxPool2d(2)]
            c = CHANNELS
        self.trunk = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(self.linear_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.policy_branch = nn.Linear(HIDDEN, params["num_action"])
        self.value_branch = nn.Linear(HIDDEN, 1)

    def forward(self, x):
        # ELF marks the acting forward "volatile" (no graph); Variable(volatile=True) is a no-op in torch >= 0.4
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.volatile):
            rep = self.mlp(self.trunk(x["s"]).flatten(1))
            return dict(pi=torch.softmax(self.policy_branch(rep), dim=1), V=self.value_branch(rep))
