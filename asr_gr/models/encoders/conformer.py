"""Conformer encoder (Gulati et al. 2020) from torchaudio's blocks, over a Conv2d subsampling front end,
exposing every block's output."""

from __future__ import annotations

import torch
from torchaudio.models.conformer import ConformerLayer

from asr_gr.models.encoders.base import Encoder, zero_padding
from asr_gr.models.encoders.subsampling import Conv2dSubsampling
from asr_gr.models.registry import ENCODERS


class MaskedConformerLayer(ConformerLayer):
    """torchaudio's ConformerLayer whose convolution module never reads padded frames: they are
    zeroed right before the depthwise convolution (after its LayerNorm and GLU, which would turn
    zeros into biases). Same parameters and state-dict keys as ConformerLayer."""

    def forward(self, input, key_padding_mask):  # noqa: A002 - torchaudio's argument names
        self._pad = key_padding_mask
        try:
            return super().forward(input, key_padding_mask)
        finally:
            self._pad = None

    def _apply_convolution(self, input):  # noqa: A002
        conv = self.conv_module
        y = conv.layer_norm(input.transpose(0, 1)).transpose(1, 2)  # (B, D, T)
        y = conv.sequential[1](conv.sequential[0](y))  # pointwise conv + GLU
        y = y.masked_fill(self._pad[:, None, :], 0.0)
        for module in conv.sequential[2:]:
            y = module(y)
        return input + y.permute(2, 0, 1)


@ENCODERS.register("conformer")
class ConformerEncoder(Encoder):
    def __init__(self, input_dim: int, d_model: int = 144, num_heads: int = 4, ffn_dim: int = 576,
                 num_layers: int = 8, kernel: int = 15, dropout: float = 0.1, subsampling: int = 4,
                 front_channels: int = 64):
        super().__init__()
        self.front = Conv2dSubsampling(input_dim, d_model, front_channels, subsampling)
        self.layers = torch.nn.ModuleList(
            MaskedConformerLayer(d_model, ffn_dim, num_heads, kernel, dropout=dropout)
            for _ in range(num_layers))
        self.layer_dims = [d_model] * num_layers

    def forward(self, feats, lens):
        x, lens = self.front(feats, lens)
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= lens[:, None]
        x = x.transpose(0, 1)  # torchaudio's layers take (T, B, D)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x, pad).masked_fill(pad.T[:, :, None], 0.0)
            out, tapped = self.tap(i, x.transpose(0, 1), lens)
            x = out.transpose(0, 1)
            outs.append(tapped)
        return out, lens, outs
