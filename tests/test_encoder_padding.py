"""Batch invariance, the contract of every encoder (asr_gr/models/encoders/base.py): an utterance's
layer outputs on its valid frames do not depend on what it is batched with or on what its padding
holds. Runs over every name in the encoder registry, so a newly registered encoder is checked too."""

import pytest
import torch

import asr_gr.models.encoders  # noqa: F401
from asr_gr.models.registry import ENCODERS

# Extra settings worth checking beside each encoder's defaults (the shipped recipes' conv_glu).
VARIANTS = {"conv_glu": [{}, {"layer_norm": True, "residual": True}],
            "conformer": [{"d_model": 48, "num_heads": 4, "ffn_dim": 96, "num_layers": 3}],
            "blstm": [{"hidden": 32, "num_layers": 2}]}
CASES = [(name, conf) for name in ENCODERS.names() for conf in VARIANTS.get(name, [{}])]


@pytest.mark.parametrize("name,conf", CASES, ids=[f"{n}{'+' + '+'.join(c) if c else ''}" for n, c in CASES])
def test_layer_outputs_do_not_depend_on_the_batch(name, conf):
    torch.manual_seed(0)
    dim = 40
    enc = ENCODERS.build(name, input_dim=dim, **conf).eval()
    short, long_ = 53, 131
    a = torch.randn(1, short, dim)
    b = torch.randn(1, long_, dim)
    with torch.no_grad():
        _, lens_alone, layers_alone = enc(a, torch.tensor([short]))
        garbage = 1e3 * torch.randn(1, long_ - short, dim)  # what a careless collate might leave
        batch = torch.cat([torch.cat([a, garbage], 1), b])
        _, lens_b, layers_b = enc(batch, torch.tensor([short, long_]))
        _, _, layers_b_alone = enc(b, torch.tensor([long_]))
    n = int(lens_alone[0])
    assert int(lens_b[0]) == n
    assert len(layers_alone) == enc.num_layers
    for i, (alone, batched) in enumerate(zip(layers_alone, layers_b)):
        diff = (alone[0, :n] - batched[0, :n]).abs().max().item()
        assert diff < 1e-4, f"{name} layer {i + 1}: batched output differs by {diff:.3g}"
        assert batched[0, n:].abs().max().item() == 0.0, f"{name} layer {i + 1}: padding is not zero"
    for i, (alone, batched) in enumerate(zip(layers_b_alone, layers_b)):  # the longer one, too
        assert (alone[0] - batched[1]).abs().max().item() < 1e-4, f"{name} layer {i + 1} (long utterance)"
