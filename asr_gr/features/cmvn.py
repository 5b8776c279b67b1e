"""CMVN statistics in Kaldi's layout and their application at load time.

Kaldi's stats are a 2 x (D+1) double matrix: row 0 = per-dim sums and the frame count in the last
column, row 1 = per-dim sums of squares (last column 0). ``compute-cmvn-stats`` writes exactly this,
and ``apply-cmvn`` reads it; we read and write it with kaldiio.

Global stats are one key-less matrix (``cmvn.ark``, as ESPnet's ``compute-cmvn-stats scp:feats.scp
cmvn.ark`` writes). Per-speaker stats are an ark of such matrices keyed by speaker plus its scp
(``compute-cmvn-stats --spk2utt=ark:spk2utt scp:feats.scp ark,scp:cmvn.ark,cmvn.scp``); apply them
with :class:`SpeakerCMVN` given utt2spk (``apply-cmvn --utt2spk``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import kaldiio
import numpy as np

from asr_gr.data.kaldi_dir import read_table, table_line_numbers
from asr_gr.features.arkio import write_ark_scp
from asr_gr.utils import DataError, atomic_path

log = logging.getLogger(__name__)


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
    feats = read_table(feats_scp)
    stats = accumulate(_load(feats_scp, utt, entry) for utt, entry in feats.items())
    with atomic_path(out_path, suffix=".ark") as tmp:
        kaldiio.save_mat(str(tmp), stats)
    return stats


def write_spk_cmvn(feats_scp, spk2utt, out_ark, out_scp=None) -> dict[str, np.ndarray]:
    """Per-speaker stats, as ``compute-cmvn-stats --spk2utt``: ``out_ark`` (keyed by speaker) and
    ``out_scp`` (default: beside it, ``.scp``). An utterance of spk2utt without features is skipped
    with a warning (as Kaldi does); a speaker with none at all is an error naming its spk2utt line."""
    feats = read_table(feats_scp)
    spk2utt_path = Path(spk2utt)
    spk2utt = read_table(spk2utt_path)
    stats: dict[str, np.ndarray] = {}
    missing = 0
    for spk, utts in spk2utt.items():
        have = [u for u in utts.split() if u in feats]
        missing += len(utts.split()) - len(have)
        if not have:
            raise DataError(spk2utt_path, table_line_numbers(spk2utt_path).get(spk),
                            f"speaker '{spk}' has no utterance in {feats_scp}")
        stats[spk] = accumulate(_load(feats_scp, u, feats[u]) for u in have)
    if missing:
        log.warning("%d utterances of spk2utt have no features in %s; skipped", missing, feats_scp)
    out_ark = Path(out_ark)
    write_ark_scp(out_ark, out_scp or out_ark.with_suffix(".scp"), stats.items())
    return stats


def _load(scp_path, utt: str, entry: str) -> np.ndarray:
    try:
        return kaldiio.load_mat(entry)
    except Exception as e:
        raise DataError(scp_path, table_line_numbers(scp_path).get(utt),
                        f"cannot read features of '{utt}': {e}") from None


def _check_stats(stats, path, line=None, key=None) -> np.ndarray:
    what = f"stats of '{key}'" if key is not None else "stats"
    if not isinstance(stats, np.ndarray) or stats.ndim != 2 or stats.shape[0] != 2 or stats[0, -1] <= 0:
        shape = getattr(stats, "shape", None)
        raise DataError(path, line, f"not Kaldi CMVN {what} (shape {shape}, 2 x (dim+1) with count > 0)")
    return np.asarray(stats, dtype=np.float64)


def load_cmvn(path) -> np.ndarray:
    """Global stats: a key-less matrix (``cmvn.ark``) or, for an scp/ark of per-speaker stats, their sum."""
    path = Path(path)
    if path.suffix == ".scp":
        return sum_stats(load_spk_cmvn(path), path)
    try:
        stats = kaldiio.load_mat(str(path))
    except Exception as e:
        try:  # an ark of per-speaker matrices (keyed) rather than one key-less matrix
            table = dict(kaldiio.load_ark(str(path)))
        except Exception:
            raise DataError(path, None, f"cannot read CMVN stats: {e}") from None
        return sum_stats({k: _check_stats(v, path, key=k) for k, v in table.items()}, path)
    return _check_stats(stats, path)


def load_spk_cmvn(scp) -> dict[str, np.ndarray]:
    """Per-speaker stats from a cmvn.scp (``spk path.ark:offset`` lines, as Kaldi writes them)."""
    table = read_table(scp)
    lines = table_line_numbers(scp)
    out = {}
    for spk, entry in table.items():
        try:
            mat = kaldiio.load_mat(entry)
        except Exception as e:
            raise DataError(scp, lines.get(spk), f"cannot read CMVN stats of '{spk}': {e}") from None
        out[spk] = _check_stats(mat, scp, lines.get(spk), spk)
    if not out:
        raise DataError(scp, None, "no CMVN stats")
    return out


def sum_stats(stats: dict[str, np.ndarray], path) -> np.ndarray:
    """Global stats as the sum of per-speaker ones (every frame counted once)."""
    dims = {v.shape[1] for v in stats.values()}
    if len(dims) != 1:
        raise DataError(path, None, f"CMVN stats of different dimensions {sorted(d - 1 for d in dims)}")
    return np.sum(list(stats.values()), axis=0)


class CMVN:
    """Apply mean (and variance) normalisation from Kaldi stats, as apply-cmvn --norm-vars does."""

    def __init__(self, stats: np.ndarray, norm_vars: bool = True):
        count = stats[0, -1]
        self.mean = (stats[0, :-1] / count).astype(np.float32)
        var = stats[1, :-1] / count - (stats[0, :-1] / count) ** 2
        self.scale = (1.0 / np.sqrt(np.maximum(var, 1e-10))).astype(np.float32) if norm_vars else None
        self.dim = stats.shape[1] - 1
        self.path = "CMVN stats"  # named in errors; from_file sets the file

    @classmethod
    def from_file(cls, path, norm_vars: bool = True) -> "CMVN":
        cmvn = cls(load_cmvn(path), norm_vars)
        cmvn.path = str(path)
        return cmvn

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        out = feats - self.mean
        if self.scale is not None:
            out = out * self.scale
        return out


class SpeakerCMVN:
    """Per-speaker normalisation (``apply-cmvn --utt2spk``): ``cmvn(feats, utt)`` uses the stats of the
    utterance's speaker. ``utt2spk`` is a dict or a utt2spk file."""

    def __init__(self, stats: dict[str, np.ndarray], utt2spk, norm_vars: bool = True, *, source="cmvn.scp"):
        self.utt2spk_path = None
        if not isinstance(utt2spk, dict):
            self.utt2spk_path = Path(utt2spk)
            utt2spk = read_table(utt2spk)
        self.utt2spk = utt2spk
        self.source = source
        self.per_spk = {spk: CMVN(s, norm_vars) for spk, s in stats.items()}
        dims = {c.dim for c in self.per_spk.values()}
        if len(dims) != 1:
            raise DataError(source, None, f"CMVN stats of different dimensions {sorted(dims)}")
        self.dim = dims.pop()

    @classmethod
    def from_files(cls, cmvn_scp, utt2spk, norm_vars: bool = True) -> "SpeakerCMVN":
        return cls(load_spk_cmvn(cmvn_scp), utt2spk, norm_vars, source=cmvn_scp)

    def for_utt(self, utt: str) -> CMVN:
        spk = self.utt2spk.get(utt)
        if spk is None:
            raise DataError(self.utt2spk_path or "utt2spk", None, f"utterance '{utt}' has no speaker")
        if spk not in self.per_spk:
            raise DataError(self.source, None, f"no CMVN stats for speaker '{spk}' (of utterance '{utt}')")
        return self.per_spk[spk]

    def __call__(self, feats: np.ndarray, utt: str) -> np.ndarray:
        return self.for_utt(utt)(feats)
