"""CTC decoding."""

from __future__ import annotations

import torch


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks. ``log_probs`` is (B, T, V)."""
    best = log_probs.argmax(-1)
    out = []
    for b in range(best.shape[0]):
        seq = best[b, : int(lens[b])]
        if seq.numel() == 0:
            out.append([])
            continue
        keep = torch.ones_like(seq, dtype=torch.bool)
        keep[1:] = seq[1:] != seq[:-1]
        seq = seq[keep]
        out.append(seq[seq != blank].tolist())
    return out
