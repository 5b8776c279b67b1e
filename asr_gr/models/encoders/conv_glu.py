"""The paper's acoustic model: a wav2letter-style gated ConvNet (1-D convolutions + GLU, weight
norm, high dropout). The first layer subsamples time by ``stride``."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from asr_gr.models.encoders.base import Encoder, zero_padding
from asr_gr.models.registry import ENCODERS


class GLUBlock(nn.Module):
    """Conv1d -> GLU -> dropout, optionally with a pre-LayerNorm and a residual connection (the
    residual applies only where the block keeps the size and the frame rate)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, dropout: float,
                 layer_norm: bool = False, residual: bool = False):
        super().__init__()
        self.kernel, self.stride, self.pad = kernel, stride, kernel // 2
        self.norm = nn.LayerNorm(in_dim) if layer_norm else None
        self.conv = weight_norm(nn.Conv1d(in_dim, 2 * out_dim, kernel, stride=stride, padding=self.pad))
        self.glu = nn.GLU(dim=1)
        self.dropout = nn.Dropout(dropout)
        self.residual = residual and in_dim == out_dim and stride == 1

    def out_lens(self, lens: torch.Tensor) -> torch.Tensor:
        return torch.div(lens + 2 * self.pad - self.kernel, self.stride, rounding_mode="floor") + 1

    def forward(self, x, lens):
        """x: (B, C, T) with zeros past ``lens``; returns (y, out_lens), y zero past out_lens."""
        y = x if self.norm is None else self.norm(x.transpose(1, 2)).transpose(1, 2)
        if self.norm is not None:  # LayerNorm turns zero padding into its bias: zero it again
            y = zero_padding(y, lens, time_dim=2)
        y = self.dropout(self.glu(self.conv(y)))
        if self.residual:
            y = x + y
        out_lens = self.out_lens(lens)
        return zero_padding(y, out_lens, time_dim=2), out_lens


@ENCODERS.register("conv_glu")
class ConvGLUEncoder(Encoder):
    def __init__(self, input_dim: int, channels=(256, 256, 256, 256, 256), kernels=(7, 5, 5, 5, 5),
                 stride: int = 3, dropout: float = 0.2, layer_norm: bool = False, residual: bool = False):
        super().__init__()
        channels, kernels = list(channels), list(kernels)
        if len(channels) != len(kernels):
            raise ValueError(f"channels ({len(channels)}) and kernels ({len(kernels)}) differ in length")
        blocks, prev = [], input_dim
        for i, (c, k) in enumerate(zip(channels, kernels)):
            blocks.append(GLUBlock(prev, c, k, stride if i == 0 else 1, dropout, layer_norm, residual))
            prev = c
        self.blocks = nn.ModuleList(blocks)
        self.layer_dims = channels

    def output_lengths(self, lens):
        for block in self.blocks:
            lens = block.out_lens(lens)
        return lens

    def forward(self, feats, lens):
        x = zero_padding(feats, lens).transpose(1, 2)
        layers = []
        for i, block in enumerate(self.blocks):
            x, lens = block(x, lens)
            out, layer = self.tap(i, x.transpose(1, 2), lens)
            x = out.transpose(1, 2)
            layers.append(layer)
        return out, lens, layers
