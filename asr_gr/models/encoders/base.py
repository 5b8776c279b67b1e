from __future__ import annotations

from contextlib import contextmanager

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

    At each layer boundary ``forward`` calls ``self.tap(i, x, lens)`` and feeds the first tensor it
    returns to the layers above and the second to ``layers[i]``: the same tensor, unless a tap is set
    on layer i for this forward pass (``with encoder.tapped(i, fn)``), e.g. the adaptive gradient
    reversal, which must see the gradients from above and from the speaker head apart.
    """

    layer_dims: list[int]
    _tap = None  # (layer index, fn) while a ``tapped`` block runs

    def tap(self, index: int, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x for the layers above, x for ``layers[index]``) of layer ``index``'s (0-based) output ``x``
        (B, T, C) with ``lens`` valid frames: ``(x, x)`` unless a tap is set on this layer."""
        if self._tap is None or self._tap[0] != index:
            return x, x
        return self._tap[1](x, lens)

    @contextmanager
    def tapped(self, index: int, fn):
        """Route layer ``index``'s output through ``fn(x, lens) -> (x_above, x_layer)`` while the block runs."""
        self._tap = (index, fn)
        try:
            yield self
        finally:
            self._tap = None

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
