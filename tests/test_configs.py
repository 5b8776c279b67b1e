"""Every shipped training config is dry-run: it resolves, the model builds for every aux kind, and
one forward/backward pass on a fake batch gives finite gradients."""

from pathlib import Path

import pytest
import torch

from asr_gr.config import resolve
from asr_gr.models.asr_model import build_model
from asr_gr.train.trainer import TRAIN_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in ROOT.glob("egs/*/asr1/conf/**/*.yaml") if not p.name.startswith("grid"))  # grids: test_grid.py


def test_there_are_configs():
    assert CONFIGS


@pytest.mark.parametrize("aux", ["none", "mtl", "adversarial"])
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_dry_run(path, aux):
    cfg = resolve(TRAIN_DEFAULTS, path, [(["aux"], aux)])
    torch.manual_seed(0)
    model = build_model(cfg, input_dim=80, vocab_size=30, num_speakers=5)
    feats = torch.randn(3, 200, 80)
    lens = torch.tensor([200, 150, 120])
    ys = torch.randint(1, 30, (3, 12))
    loss, stats = model(feats, lens, ys, torch.tensor([12, 8, 0]), torch.tensor([0, 4, 2]), progress=0.5)
    loss.backward()
    assert torch.isfinite(loss) and "loss_ctc" in stats
    assert ("acc_spk" in stats) == (aux != "none")
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
