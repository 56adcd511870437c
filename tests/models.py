"""Small real torch models the core tests run on."""
import torch
from torch import nn


class LSTMLM(nn.Module):
    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, num_layers=2, dropout=0.5, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, x):
        h, _ = self.lstm(self.embed(x))
        return self.out(h)


class TinyTransformer(nn.Module):
    def __init__(self, vocab=40, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.transformer = nn.Transformer(dim, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=32, dropout=0.0, batch_first=True)
        self.out = nn.Linear(dim, vocab)

    def forward(self, src, tgt):
        return self.out(self.transformer(self.embed(src), self.embed(tgt)))


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))


def all_models():
    torch.manual_seed(0)
    return {"mlp": mlp(), "lstm": LSTMLM(), "transformer": TinyTransformer()}


def loss_of(name, model):
    if name == "mlp":
        return model(torch.randn(16, 8)).pow(2).mean()
    if name == "lstm":
        return model(torch.randint(0, 50, (4, 7))).logsumexp(-1).mean()
    return model(torch.randint(0, 40, (2, 5)), torch.randint(0, 40, (2, 6))).logsumexp(-1).mean()
