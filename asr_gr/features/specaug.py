"""SpecAugment (Park et al. 2019): frequency and time masks on a padded batch."""

from __future__ import annotations

import torch


def spec_augment(feats: torch.Tensor, lens: torch.Tensor, *, num_freq_masks: int = 2,
                 freq_width: int = 15, num_time_masks: int = 2, time_width: int = 20,
                 max_time_ratio: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a copy of ``feats`` (B, T, D) with masked bands set to 0 (the CMVN-normalised mean)."""
    out = feats.clone()
    B, _, D = out.shape
    for b in range(B):
        n = int(lens[b])
        for _ in range(num_freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=generator))
            f0 = int(torch.randint(0, max(1, D - w), (1,), generator=generator))
            out[b, :, f0:f0 + w] = 0.0
        tw = min(time_width, int(max_time_ratio * n))
        for _ in range(num_time_masks):
            w = int(torch.randint(0, tw + 1, (1,), generator=generator))
            t0 = int(torch.randint(0, max(1, n - w), (1,), generator=generator))
            out[b, t0:t0 + w, :] = 0.0
    return out
