from __future__ import annotations

import torch
from torch import nn


def valid_mask(lens: torch.Tensor, length: int) -> torch.Tensor:
    """(B, T) boolean mask, True on each row's first ``lens[b]`` frames."""
    return torch.arange(length, device=lens.device)[None, :] < lens[:, None]


def zero_padding(x: torch.Tensor, lens: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """``x`` with every frame at or past its row's length set to 0 (time on ``time_dim``, batch on 0)."""
    mask = valid_mask(lens, x.shape[time_dim])
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = mask.shape
    return x * mask.view(shape).to(x.dtype)


class Encoder(nn.Module):
    """An acoustic encoder that exposes every layer's output.

    ``forward(feats (B, T, D), lens (B,))`` returns ``(out (B, T', C), out_lens (B,), layers)`` where
    ``layers`` is the list of each layer's output (B, T', C_i), so a speaker head can attach after any
    layer and a probe can read them all. ``layer_dims[i]`` is the size of ``layers[i]``.

    The contract every encoder keeps (tests/test_encoder_padding.py checks each registered name): an
    utterance's outputs on its own valid frames do not depend on what it is batched with. Whatever
    the padded frames of ``feats`` hold, no block may read them: zero them (after any normalisation)
    before every operation that mixes frames (convolutions, pooling), mask them in attention, pack
    them in recurrent layers; and every returned layer has zeros past its row's ``out_lens``.
    """

    layer_dims: list[int]

    @property
    def num_layers(self) -> int:
        return len(self.layer_dims)

    @property
    def output_dim(self) -> int:
        return self.layer_dims[-1]

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        """Output frames for ``lens`` input frames, by length arithmetic alone (no forward pass): the
        subsampling front end's, where the encoder has one (``self.front``)."""
        return self.front.out_lens(lens)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor):  # pragma: no cover - interface
        raise NotImplementedError
