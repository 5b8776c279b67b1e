"""Convolutional front ends that subsample time before a recurrent or attention encoder."""

from __future__ import annotations

import torch
from torch import nn

from asr_gr.models.encoders.base import zero_padding


class Conv2dSubsampling(nn.Module):
    """Two stride-2 3x3 Conv2d + ReLU layers (ESPnet's Conv2dSubsampling): time / 4, then a linear
    projection to ``out_dim``. ``factor`` 2 uses one conv layer."""

    def __init__(self, input_dim: int, out_dim: int, channels: int = 64, factor: int = 4):
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"subsampling factor must be 2 or 4, got {factor}")
        self.n = 1 if factor == 2 else 2
        layers, c_in, f = [], 1, input_dim
        for _ in range(self.n):
            layers += [nn.Conv2d(c_in, channels, 3, stride=2), nn.ReLU()]
            c_in, f = channels, (f - 3) // 2 + 1
        self.conv = nn.Sequential(*layers)
        self.out = nn.Linear(channels * f, out_dim)

    def out_lens(self, lens: torch.Tensor) -> torch.Tensor:
        for _ in range(self.n):
            lens = torch.div(lens - 3, 2, rounding_mode="floor") + 1
        return lens.clamp(min=1)

    def forward(self, x: torch.Tensor, lens: torch.Tensor):  # x: (B, T, D)
        """Valid output frames read only valid input frames (unpadded stride-2 convolutions); the
        output is zero past its lengths, so the blocks above may convolve over it."""
        y = self.conv(zero_padding(x, lens).unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = y.shape
        out_lens = self.out_lens(lens)
        return zero_padding(self.out(y.transpose(1, 2).reshape(b, t, c * f)), out_lens), out_lens
