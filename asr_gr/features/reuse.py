"""Reuse features that Kaldi or ESPnet made: a data dir with feats.scp (plain or compressed
matrices, as ``copy-feats --compress`` / ``compute-mfcc-feats`` write them) and optional CMVN stats
(``cmvn.scp`` per speaker, or a key-less global ``cmvn.ark``).

:func:`import_feats_dir` checks that every matrix loads and that all have one dimension, and writes
a dump dir like stage 2's: feats.scp with absolute paths (the arks stay where they are),
utt2num_frames, the data dir's tables, and global CMVN stats ``cmvn.ark`` (per-speaker stats, when
given, also as ``cmvn.scp`` + ``cmvn_spk.ark``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import kaldiio
import numpy as np

from asr_gr.data.kaldi_dir import read_table, table_line_numbers, write_table
from asr_gr.features.arkio import PathResolver, write_ark_scp, write_scp
from asr_gr.features.cmvn import _check_stats, accumulate, load_cmvn, sum_stats
from asr_gr.utils import DataError, atomic_path

COPIED = ("text", "utt2spk", "spk2utt", "spk2gender", "utt2spkid", "utt2dur")


def _roots(data_dir: Path, path_root) -> list[Path]:
    if path_root is not None:
        return [Path(path_root)]
    # Kaldi writes paths relative to the directory the recipe ran in (for data/<set>, the data dir's
    # grandparent): try the working directory first, then the data dir and its parents.
    d = data_dir.resolve()
    return [Path.cwd(), d, d.parent, d.parent.parent]


def import_feats_dir(data_dir, out_dir, *, cmvn=None, path_root=None, dim: int | None = None) -> dict:
    """Validate ``data_dir``/feats.scp and write a dump dir to ``out_dir``. Returns a summary dict
    (utts, frames, dim, cmvn: where the global stats came from)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    scp = data_dir / "feats.scp"
    table = read_table(scp)
    if not table:
        raise DataError(scp, None, "no utterances")
    lines = table_line_numbers(scp)
    resolver = PathResolver(_roots(data_dir, path_root))
    utt2spk = read_table(data_dir / "utt2spk") if (data_dir / "utt2spk").exists() else None

    entries, num_frames = [], {}
    stats = None
    for utt, value in table.items():
        line = lines.get(utt)
        if utt2spk is not None and utt not in utt2spk:
            raise DataError(scp, line, f"utterance '{utt}' is not in utt2spk")
        entry, problem = resolver.entry(value)
        if problem:
            raise DataError(scp, line, problem)
        try:
            mat = kaldiio.load_mat(entry)
        except Exception as e:
            reason = str(e).splitlines()[0] if str(e) else f"no Kaldi matrix at '{entry}'"
            raise DataError(scp, line, f"cannot read features of '{utt}': {reason}") from None
        if not isinstance(mat, np.ndarray) or mat.ndim != 2:
            raise DataError(scp, line, f"features of '{utt}' are not a matrix (shape {np.shape(mat)})")
        if dim is None:
            dim = mat.shape[1]
        if mat.shape[1] != dim:
            raise DataError(scp, line, f"dimension {mat.shape[1]}, expected {dim}")
        if mat.shape[0] == 0:
            raise DataError(scp, line, f"features of '{utt}' have no frames")
        if not np.isfinite(mat).all():
            raise DataError(scp, line, f"features of '{utt}' contain NaN or infinite values")
        s = accumulate([mat])
        stats = s if stats is None else stats + s
        entries.append((utt, entry))
        num_frames[utt] = mat.shape[0]

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = data_dir / name
        if src.exists():
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(src, tmp)
    source = _import_cmvn(data_dir, out_dir, cmvn, resolver, dim, stats, utt2spk)
    write_table(out_dir / "utt2num_frames", num_frames)
    write_scp(out_dir / "feats.scp", entries)
    return {"utts": len(entries), "frames": int(sum(num_frames.values())), "dim": dim, "cmvn": source}


def _import_cmvn(data_dir: Path, out_dir: Path, cmvn, resolver: PathResolver, dim: int,
                 feats_stats: np.ndarray, utt2spk) -> str:
    """Write out_dir/cmvn.ark (global) and, for per-speaker stats, cmvn.scp + cmvn_spk.ark."""
    if cmvn is None:
        for name in ("cmvn.scp", "cmvn.ark"):
            if (data_dir / name).exists():
                cmvn = data_dir / name
                break
    cmvn = Path(cmvn) if cmvn is not None else None
    if cmvn is None or cmvn.suffix != ".scp":  # no per-speaker stats: none from an earlier import either
        for name in ("cmvn.scp", "cmvn_spk.ark"):
            (out_dir / name).unlink(missing_ok=True)
    if cmvn is None:
        _save_global(out_dir / "cmvn.ark", feats_stats)
        return "computed from the features"
    if cmvn.suffix == ".scp":
        table = read_table(cmvn)
        lines = table_line_numbers(cmvn)
        per_spk = {}
        for spk, value in table.items():
            entry, problem = resolver.entry(value)
            if problem:
                raise DataError(cmvn, lines.get(spk), problem)
            try:
                mat = kaldiio.load_mat(entry)
            except Exception as e:
                raise DataError(cmvn, lines.get(spk), f"cannot read CMVN stats of '{spk}': {e}") from None
            per_spk[spk] = _check_dim(_check_stats(mat, cmvn, lines.get(spk), spk), dim, cmvn, lines.get(spk))
        if utt2spk is not None:
            missing = sorted(set(utt2spk.values()) - set(per_spk))
            if missing:
                raise DataError(cmvn, None, f"no stats for speaker '{missing[0]}' of utt2spk"
                                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        write_ark_scp(out_dir / "cmvn_spk.ark", out_dir / "cmvn.scp", per_spk.items())
        _save_global(out_dir / "cmvn.ark", sum_stats(per_spk, cmvn))
        return f"per-speaker stats of {cmvn} ({len(per_spk)} speakers; global = their sum)"
    if not cmvn.exists():
        raise DataError(cmvn, None, "CMVN stats file does not exist")
    # a key-less global matrix (ESPnet's cmvn.ark) or an ark of per-speaker ones (then summed)
    _save_global(out_dir / "cmvn.ark", _check_dim(load_cmvn(cmvn), dim, cmvn, None))
    return f"global stats of {cmvn}"


def _check_dim(stats: np.ndarray, dim: int, path, line) -> np.ndarray:
    if stats.shape[1] - 1 != dim:
        raise DataError(path, line, f"CMVN stats of dimension {stats.shape[1] - 1}, features have {dim}")
    return stats


def _save_global(path: Path, stats: np.ndarray) -> None:
    with atomic_path(path, suffix=".ark") as tmp:
        kaldiio.save_mat(str(tmp), stats)
