"""Average the model weights of several checkpoints (ESPnet's n-best averaging)."""

from __future__ import annotations

import torch


def average_state_dicts(states: list[dict]) -> dict:
    """Element-wise mean of floating-point tensors; integer tensors (counters) come from the last."""
    if not states:
        raise ValueError("nothing to average")
    out = {}
    for k, v in states[-1].items():
        if torch.is_floating_point(v):
            out[k] = sum(s[k].to(torch.float64) for s in states).div(len(states)).to(v.dtype)
        else:
            out[k] = v.clone()
    return out


def best_epochs(rows: list[dict], metric: str, n: int) -> list[int]:
    """The ``n`` epochs with the lowest ``metric`` (ties broken by the later epoch)."""
    scored = [(r[metric], -r["epoch"], r["epoch"]) for r in rows if metric in r]
    return sorted(e for _, _, e in sorted(scored)[:n])
