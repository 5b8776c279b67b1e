"""SpecAugment (Park et al. 2019): frequency and time masks on a padded batch, plus an optional
VTLP-style frequency warp (Jaitly & Hinton 2013) that imitates other vocal-tract lengths."""

from __future__ import annotations

import torch


def spec_augment(feats: torch.Tensor, lens: torch.Tensor, *, num_freq_masks: int = 2,
                 freq_width: int = 15, num_time_masks: int = 2, time_width: int = 20,
                 max_time_ratio: float = 0.2, freq_warp: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a copy of ``feats`` (B, T, D) with masked bands set to 0 (the CMVN-normalised mean).

    ``freq_warp`` > 0 first stretches each utterance's frequency axis by a factor drawn uniformly
    from [1 - freq_warp, 1 + freq_warp].
    """
    out = warp_frequency(feats, freq_warp, generator) if freq_warp > 0 else feats.clone()
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


def warp_frequency(feats: torch.Tensor, max_warp: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Linear warp of the frequency axis per utterance: bin f takes the value at f * alpha (linear
    interpolation between bins, clamped at the top), alpha ~ U[1 - max_warp, 1 + max_warp]."""
    B, T, D = feats.shape
    alpha = 1.0 + (torch.rand(B, generator=generator) * 2.0 - 1.0) * max_warp
    src = (torch.arange(D, dtype=feats.dtype)[None, :] * alpha[:, None]).clamp(max=D - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=D - 1)
    w = (src - lo.to(feats.dtype))[:, None, :]
    gather = lambda idx: feats.gather(2, idx[:, None, :].expand(B, T, D))  # noqa: E731
    return gather(lo) * (1.0 - w) + gather(hi) * w
