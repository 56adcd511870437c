"""Language modeling: LSTM LM with the test log-perplexity (checked against plain fairseq-eval-lm),
transformer_lm with the one-shot schedule and embeddings excluded from pruning."""
import math
import re
import subprocess

import torch

from .helpers import BIN, LSTM_MODEL, TLM_MODEL, env, fairseq_train, load_ckpt, load_mask, metrics


def test_lstm_lm_three_rounds_with_test_log_perplexity(lm_data, tmp_path):
    save = tmp_path / "lstm"
    fairseq_train(lm_data, save, *LSTM_MODEL, "--max-epoch", "3", "--lottery-prune", "--lottery-rounds", "3",
                  "--lottery-late-reset", "1ep")
    for k in range(4):
        rec = metrics(save, k)
        m = rec["metrics"]
        assert rec["primary"] == "test_log_ppl" and rec["higher_is_better"] is False
        assert math.isclose(m["test_log_ppl"], m["test_loss"] * math.log(2), rel_tol=1e-9)
        assert math.isclose(m["test_ppl"], 2 ** m["test_loss"], rel_tol=1e-3)
        assert 0 < m["test_log_ppl"] < math.log(48)  # better than uniform over the vocabulary
        assert abs(rec["fraction_pruned"] - (1 - 0.8 ** k)) < 1e-3
    # the recorded number is what plain fairseq-eval-lm (no plugin, no env var) prints for that checkpoint
    proc = subprocess.run([str(BIN / "fairseq-eval-lm"), str(lm_data), "--path", str(save / "round_02" / "checkpoint_last.pt"),
                           "--cpu", "--gen-subset", "test", "--tokens-per-sample", "20", "--sample-break-mode", "none",
                           "--max-tokens", "4000"], env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    loss = float(re.search(r"Loss \(base 2\): ([0-9.]+)", proc.stdout).group(1))
    assert abs(loss - metrics(save, 2)["metrics"]["test_loss"]) < 1e-3
    mask = load_mask(save, 3)
    state = load_ckpt(save / "round_03" / "checkpoint_last.pt")["model"]
    for n, m in mask.items():
        assert torch.all(state[n][~m] == 0)


def test_transformer_lm_oneshot_with_embeddings_excluded(lm_data, tmp_path):
    save = tmp_path / "tlm"
    fairseq_train(lm_data, save, *TLM_MODEL, "--max-update", "30", "--lottery-prune", "--lottery-rounds", "2",
                  "--lottery-schedule", "oneshot", "--lottery-reset", "init", "--lottery-exclude", "*embed*",
                  "--lottery-no-test")
    m1, m2 = load_mask(save, 1), load_mask(save, 2)
    assert not any("embed" in n for n in m1)  # embeddings are not selected at all
    assert any("layers.0" in n for n in m1)
    state = load_ckpt(save / "round_02" / "checkpoint_last.pt")["model"]
    emb = state["decoder.embed_tokens.weight"]
    assert int((emb == 0).sum()) == 0  # embeddings stay dense
    for n, m in m2.items():
        assert torch.all(state[n][~m] == 0)
    # one-shot: every round's mask is pruned directly from the dense round-0 weights, so they are nested
    assert all(bool((m2[n] <= m1[n]).all()) for n in m1)
    assert abs(m2.density() - 0.64) < 1e-3 and abs(m1.density() - 0.8) < 1e-3
    for k in range(3):
        assert metrics(save, k)["primary"] == "valid_loss"
