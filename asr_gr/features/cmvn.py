"""CMVN statistics in Kaldi's layout and their application at load time.

Kaldi's stats are a 2 x (D+1) double matrix: row 0 = per-dim sums and the frame count in the last
column, row 1 = per-dim sums of squares (last column 0). ``compute-cmvn-stats`` writes exactly this,
and ``apply-cmvn`` reads it; we read and write it with kaldiio.
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from asr_gr.utils import DataError, atomic_path


def accumulate(feats_iter) -> np.ndarray:
    stats = None
    for feats in feats_iter:
        feats = np.asarray(feats, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, feats.shape[1] + 1), dtype=np.float64)
        stats[0, :-1] += feats.sum(0)
        stats[1, :-1] += (feats**2).sum(0)
        stats[0, -1] += feats.shape[0]
    if stats is None:
        raise ValueError("no features to accumulate CMVN statistics from")
    return stats


def write_global_cmvn(feats_scp, out_path) -> np.ndarray:
    """Global CMVN stats over every utterance of ``feats_scp``, written as a key-less Kaldi matrix."""
    stats = accumulate(mat for _, mat in kaldiio.load_scp_sequential(str(feats_scp)))
    with atomic_path(out_path, suffix=".ark") as tmp:
        kaldiio.save_mat(str(tmp), stats)
    return stats


def load_cmvn(path) -> np.ndarray:
    try:
        stats = kaldiio.load_mat(str(path))
    except Exception as e:
        raise DataError(path, None, f"cannot read CMVN stats: {e}") from None
    if stats.ndim != 2 or stats.shape[0] != 2 or stats[0, -1] <= 0:
        raise DataError(path, None, f"not Kaldi CMVN stats (shape {stats.shape}, count must be > 0)")
    return stats


class CMVN:
    """Apply mean (and variance) normalisation from Kaldi stats, as apply-cmvn --norm-vars does."""

    def __init__(self, stats: np.ndarray, norm_vars: bool = True):
        count = stats[0, -1]
        self.mean = (stats[0, :-1] / count).astype(np.float32)
        var = stats[1, :-1] / count - (stats[0, :-1] / count) ** 2
        self.scale = (1.0 / np.sqrt(np.maximum(var, 1e-10))).astype(np.float32) if norm_vars else None
        self.dim = stats.shape[1] - 1

    @classmethod
    def from_file(cls, path, norm_vars: bool = True) -> "CMVN":
        return cls(load_cmvn(path), norm_vars)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        out = feats - self.mean
        if self.scale is not None:
            out = out * self.scale
        return out
