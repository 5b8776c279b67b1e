from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """An acoustic encoder that exposes every layer's output.

    ``forward(feats (B, T, D), lens (B,))`` returns ``(out (B, T', C), out_lens (B,), layers)`` where
    ``layers`` is the list of each layer's output (B, T', C_i), so a speaker head can attach after any
    layer and a probe can read them all. ``layer_dims[i]`` is the size of ``layers[i]``.
    """

    layer_dims: list[int]

    @property
    def num_layers(self) -> int:
        return len(self.layer_dims)

    @property
    def output_dim(self) -> int:
        return self.layer_dims[-1]

    def forward(self, feats: torch.Tensor, lens: torch.Tensor):  # pragma: no cover - interface
        raise NotImplementedError
