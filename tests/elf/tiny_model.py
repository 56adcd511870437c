"""An ELF model file with a network small enough that games finish within seconds on a CPU (the paper's network
plays a few steps per second here): frames averaged over 8x8 pixels, one hidden layer of 16, the plugin's
method. For tests of what does not depend on the network: game scores, resume points, sweeps.

    model_file=tests/elf/tiny_model model=tiny python -m elf_ext.train ...
"""
import torch
import torch.nn.functional as F
from rlpytorch import Model

from elf_ext.flags import PAPER_DEFAULTS
from elf_ext.method import ActorCriticClipped


class TinyAtariNet(Model):
    def __init__(self, args):
        super().__init__(args)
        params = args.params
        pooled = (params.get("feature_height", 105) // 8) * (params.get("feature_width", 80) // 8)
        self.body = torch.nn.Linear(3 * params["hist_len"] * pooled, 16)
        self.policy_branch = torch.nn.Linear(16, params["num_action"])
        self.value_branch = torch.nn.Linear(16, 1)

    def forward(self, x):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.volatile):
            h = torch.relu(self.body(F.avg_pool2d(x["s"], 8).flatten(1)))
            return dict(pi=torch.softmax(self.policy_branch(h), dim=1), V=self.value_branch(h))


Models = {"tiny": [TinyAtariNet, ActorCriticClipped]}
Defaults = dict(PAPER_DEFAULTS)
