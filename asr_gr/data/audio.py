"""Audio loading for wav.scp entries, with errors that name the wav.scp (or segments) line.

A wav.scp value may be, as in Kaldi and ESPnet:

* a file path in any format libsndfile reads (WAV, FLAC, OGG, ...);
* a pipe ``cmd args |``: the command's standard output is read as a WAV (or FLAC, ...) stream;
* ``path.ark:offset``: an audio object inside a Kaldi ark (as written by ``wav-copy``, ESPnet's
  ``format_wav_scp.sh`` or ``kaldiio.save_ark`` of ``(rate, int16 array)`` pairs).

When the data dir has a ``segments`` file (``utt rec start end``, times in seconds, ``end == -1`` meaning
to the end), wav.scp is keyed by recording and each utterance is cut from its recording.

**Pipe commands are trusted input, exactly as in Kaldi**: a ``cmd |`` entry is run with the shell
because the data dir's wav.scp says so, with the permissions of the user running the tool. Only that
wav.scp text is ever run; no shell string is built from any other field (utterance ids, paths,
options). Do not use data dirs from sources you would not run a shell script from.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from asr_gr.data.kaldi_dir import split_ark_entry
from asr_gr.utils import DataError

# A segment may end up to this many seconds past the recording's end (rounding in segments files).
SEGMENT_END_TOLERANCE = 0.02


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _exc_reason(e: BaseException) -> str:
    return _first_line(str(e)) or type(e).__name__


def _check_samples(data: np.ndarray, what: str, where) -> np.ndarray:
    """``data`` is (frames, channels) or (frames,); return mono float32 or raise DataError."""
    path, line = where
    if data.ndim == 2:
        if data.shape[1] != 1:
            raise DataError(path, line, f"{what} has {data.shape[1]} channels; expected mono")
        data = data[:, 0]
    elif data.ndim != 1:
        raise DataError(path, line, f"{what} is not audio (an array of {data.ndim} dimensions)")
    if data.shape[0] == 0:
        raise DataError(path, line, f"{what} has no samples")
    return np.ascontiguousarray(data, dtype=np.float32)


def _read_file(target: str, where) -> tuple[np.ndarray, int]:
    path, line = where
    p = Path(target)
    if not p.exists():
        raise DataError(path, line, f"audio file '{target}' does not exist")
    if p.stat().st_size == 0:
        raise DataError(path, line, f"audio file '{target}' is empty (0 bytes)")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types; the message is what matters
        raise DataError(path, line, f"cannot read audio file '{target}': {_exc_reason(e)}") from None
    return _check_samples(data, f"audio file '{target}'", where), int(sr)


def _read_pipe(target: str, where) -> tuple[np.ndarray, int]:
    # Trusted input, as in Kaldi: the command is the wav.scp text itself (see the module docstring).
    path, line = where
    cmd = target[:-1].strip()
    if not cmd:
        raise DataError(path, line, "empty pipe command ('|' alone)")
    proc = subprocess.run(cmd, shell=True, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    last = stderr.splitlines()[-1].strip() if stderr else ""
    if proc.returncode != 0:
        raise DataError(path, line, f"command '{cmd}' failed with exit status {proc.returncode}"
                        + (f": {last}" if last else " (it printed no error message)"))
    if not proc.stdout:
        raise DataError(path, line, f"command '{cmd}' wrote no audio to its output"
                        + (f": {last}" if last else ""))
    try:
        data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    except Exception as e:
        raise DataError(path, line, f"cannot read the output of command '{cmd}' as audio: "
                        f"{_exc_reason(e)}") from None
    return _check_samples(data, f"the output of command '{cmd}'", where), int(sr)


def _int_to_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    if array.dtype == np.int32:
        return array.astype(np.float32) / 2147483648.0
    if array.dtype == np.uint8:  # 8-bit PCM is unsigned
        return (array.astype(np.float32) - 128.0) / 128.0
    return array.astype(np.float32)


def _read_ark(target: str, ark: str, where) -> tuple[np.ndarray, int]:
    import kaldiio

    path, line = where
    if not Path(ark).exists():
        raise DataError(path, line, f"ark file '{ark}' (of entry '{target}') does not exist")
    try:
        obj = kaldiio.load_mat(target)
    except Exception as e:
        raise DataError(path, line, f"cannot read ark entry '{target}': {_exc_reason(e)}") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        shape = getattr(obj, "shape", None)
        raise DataError(path, line, f"ark entry '{target}' holds a matrix{f' of shape {shape}' if shape else ''}, "
                        "not audio (is this a feats.scp entry?)")
    rate, array = obj
    return _check_samples(_int_to_float(np.asarray(array)), f"ark entry '{target}'", where), int(rate)


def _read_entry(entry: str, where) -> tuple[np.ndarray, int]:
    """Read any wav.scp value at its own sample rate: (float32 mono samples in [-1, 1], rate)."""
    path, line = where
    target = entry.strip()
    if not target:
        raise DataError(path, line, "empty wav.scp entry")
    if target.endswith("|"):
        return _read_pipe(target, where)
    if target.startswith("|"):
        raise DataError(path, line, f"'{target}': an input pipe must end with '|' ('cmd args |')")
    ark = split_ark_entry(target)
    if ark and not Path(target).exists():
        return _read_ark(target, ark[0], where)
    return _read_file(target, where)


def _conform_rate(samples: np.ndarray, sr: int, what: str, where, sample_rate: int | None,
                  resample: bool) -> tuple[np.ndarray, int]:
    if sample_rate is None or sr == sample_rate:
        return samples, sr
    if not resample:
        path, line = where
        raise DataError(path, line, f"{what} is {sr} Hz; expected {sample_rate} Hz (opt in to resampling "
                        f"with torchaudio: asr.sh --fs {sample_rate}, or compute_fbank --resample true)")
    return resample_audio(samples, sr, sample_rate), sample_rate


def resample_audio(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz converted to ``new_rate`` Hz (torchaudio's band-limited sinc
    interpolation): what stage 2 (``--resample``/``--fs``) and Speech2Text both do."""
    if rate == new_rate:
        return samples
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), orig_freq=rate,
                      new_freq=new_rate)
    return out.numpy().astype(np.float32, copy=False)


def load_audio_file(path, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """An audio file (any format libsndfile reads; never a pipe or ark entry, whatever its name) as
    float32 mono in [-1, 1], resampled to ``sample_rate`` when given. Errors name the file."""
    samples, sr = _read_file(str(path), (path, None))
    if sample_rate is not None and sr != sample_rate:
        return resample_audio(samples, sr, sample_rate), sample_rate
    return samples, sr


def as_mono_float(samples, what: str = "the waveform") -> np.ndarray:
    """A waveform array (float in [-1, 1], or int16/int32/uint8 PCM; shape (n,) or (n, 1)) as float32."""
    return _check_samples(_int_to_float(np.asarray(samples)), what, (what, None))


def _describe(entry: str) -> str:
    target = entry.strip()
    if target.endswith("|"):
        return f"the output of command '{target[:-1].strip()}'"
    if split_ark_entry(target) and not Path(target).exists():
        return f"ark entry '{target}'"
    return f"audio file '{target}'"


def load_audio(entry: str, *, where=("wav.scp", None), sample_rate: int | None = None,
               resample: bool = False) -> tuple[np.ndarray, int]:
    """Read a wav.scp value (file path, ``cmd |`` pipe or ``path.ark:offset``) as float32 mono in [-1, 1].

    ``where`` is (file, line) for the error message. Audio that is missing, empty, unreadable or
    multichannel, a failing pipe command, or a rate that differs from ``sample_rate`` (when given and
    ``resample`` is False) raises DataError naming that line. With ``resample=True`` a different rate
    is converted to ``sample_rate`` (torchaudio's band-limited sinc interpolation).

    Pipe commands are run with the shell because wav.scp contains them (trusted input, as in Kaldi;
    see the module docstring).
    """
    samples, sr = _read_entry(entry, where)
    return _conform_rate(samples, sr, _describe(entry), where, sample_rate, resample)


def iter_utterances(data_dir, *, sample_rate: int | None = None, utts=None, resample: bool = False):
    """Yield ``(utt, samples, sample_rate)`` for every utterance of a Kaldi data dir, in utt order.

    Reads ``wav.scp`` entries (see :func:`load_audio`); ``utts`` restricts to a subset (parallel jobs).
    With a ``segments`` file, wav.scp is keyed by recording: each recording is read once while its
    segments follow one another (the last one is cached) and the segment [start, end) is cut from it;
    a segment outside its recording is an error naming the segments line. ``resample=True`` converts
    audio whose rate differs from ``sample_rate`` instead of raising. Every error names the line it
    comes from.
    """
    from asr_gr.data.kaldi_dir import parse_segment, read_table, table_line_numbers

    d = Path(data_dir)
    wav_scp = d / "wav.scp"
    table = read_table(wav_scp)
    lines = table_line_numbers(wav_scp)
    seg_path = d / "segments"
    if not seg_path.exists():
        for utt in (table if utts is None else utts):
            if utt not in table:
                raise DataError(wav_scp, None, f"utterance '{utt}' is not in this file")
            samples, sr = load_audio(table[utt], where=(wav_scp, lines[utt]), sample_rate=sample_rate,
                                     resample=resample)
            yield utt, samples, sr
        return

    segments = read_table(seg_path)
    seg_lines = table_line_numbers(seg_path)
    cached_rec, cached = None, None
    for utt in (segments if utts is None else utts):
        if utt not in segments:
            raise DataError(seg_path, None, f"utterance '{utt}' is not in this file")
        where = (seg_path, seg_lines[utt])
        rec, start, end = parse_segment(segments[utt], where)
        if rec not in table:
            raise DataError(seg_path, where[1], f"recording '{rec}' of utterance '{utt}' is not in {wav_scp}")
        rec_where = (wav_scp, lines[rec])
        if rec != cached_rec:
            cached_rec, cached = None, None  # never keep a stale recording if reading fails
            cached = _read_entry(table[rec], rec_where)
            cached_rec = rec
        audio, sr = cached
        duration = audio.shape[0] / sr
        if start >= duration:
            raise DataError(seg_path, where[1], f"segment of '{utt}' starts at {start:g} s, at or after the "
                            f"end of recording '{rec}' ({duration:.3f} s)")
        if end == -1:
            end = duration
        elif end > duration + SEGMENT_END_TOLERANCE:
            raise DataError(seg_path, where[1], f"segment of '{utt}' ends at {end:g} s, after the end of "
                            f"recording '{rec}' ({duration:.3f} s)")
        a, b = int(round(start * sr)), min(int(round(end * sr)), audio.shape[0])
        if b <= a:
            raise DataError(seg_path, where[1], f"segment of '{utt}' ({start:g}-{end:g} s) has no samples")
        samples, out_sr = _conform_rate(audio[a:b].copy(), sr, _describe(table[rec]), rec_where,
                                        sample_rate, resample)
        yield utt, samples, out_sr
