"""Audio loading for wav.scp entries, with errors that name the wav.scp line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from asr_gr.utils import DataError


def load_audio(entry: str, *, where=("wav.scp", None), sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a wav.scp value (a file path) as float32 mono samples in [-1, 1].

    ``where`` is (file, line) for the error message. A file that is missing, empty, not audio or
    multichannel, or whose rate differs from ``sample_rate`` (when given), raises DataError.
    """
    path, line = where
    target = entry.strip()
    if target.endswith("|"):
        raise DataError(path, line, "pipe entries ('cmd |') are not supported yet; give a file path")
    p = Path(target)
    if not p.exists():
        raise DataError(path, line, f"audio file '{target}' does not exist")
    if p.stat().st_size == 0:
        raise DataError(path, line, f"audio file '{target}' is empty (0 bytes)")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; the message is what matters
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(path, line, f"cannot read audio file '{target}': {reason}") from None
    if data.shape[1] != 1:
        raise DataError(path, line, f"audio file '{target}' has {data.shape[1]} channels; expected mono")
    if data.shape[0] == 0:
        raise DataError(path, line, f"audio file '{target}' has no samples")
    if sample_rate is not None and sr != sample_rate:
        raise DataError(path, line, f"audio file '{target}' is {sr} Hz; expected {sample_rate} Hz")
    return data[:, 0], sr


def iter_utterances(data_dir, *, sample_rate: int | None = None, utts=None):
    """Yield ``(utt, samples, sample_rate)`` for every utterance of a Kaldi data dir, in utt order.

    Reads ``wav.scp`` entries (see :func:`load_audio`); ``utts`` restricts to a subset (parallel jobs).
    Every error names the wav.scp line it comes from.
    """
    from asr_gr.data.kaldi_dir import read_table, table_line_numbers

    wav_scp = Path(data_dir) / "wav.scp"
    table = read_table(wav_scp)
    lines = table_line_numbers(wav_scp)
    for utt in (table if utts is None else utts):
        samples, sr = load_audio(table[utt], where=(wav_scp, lines[utt]), sample_rate=sample_rate)
        yield utt, samples, sr
