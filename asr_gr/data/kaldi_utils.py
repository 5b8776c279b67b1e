"""Kaldi's data-dir utilities that recipes' ``local/data_prep.sh`` call, with Kaldi's semantics:
``utils/combine_data.sh``, ``utils/copy_data_dir.sh``, ``utils/data/get_utt2dur.sh`` and
``utils/perturb_data_dir_speed.sh`` (the shell scripts run :mod:`asr_gr.bin.data_utils`).

Speed perturbation without sox: Kaldi writes a perturbed wav.scp entry as a ``sox ... speed F |`` pipe
that is run whenever the audio is read. Here the pipe runs ``python -m asr_gr.bin.data_utils speed F
INPUT`` instead (INPUT: the original file or ark entry, or ``-`` after the original pipe command),
which writes a WAV to its standard output, so the perturbed data dir stays a few lines of text, as in
Kaldi, and any reader of ``cmd |`` entries (asr_gr's, Kaldi's) reads it. The resampling is
torchaudio's band-limited sinc interpolation (:func:`speed_resample` computes exactly what
``asr_gr.features.perturb.speed_perturb`` does, in numpy, so that each pipe starts in a fraction of a
second instead of importing torch). 16-bit input gives 16-bit output (as sox does; Kaldi's tools read
only PCM), anything else 32-bit float.

Every error names the file, line and reason (:class:`asr_gr.utils.DataError`).
"""

from __future__ import annotations

import io
import math
import shlex
import subprocess
import sys
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np

from asr_gr.data.kaldi_dir import (parse_segment, read_table, spk2utt_from_utt2spk, split_ark_entry,
                                   table_line_numbers, validate_data_dir, write_table)
from asr_gr.data.ops import ALL_TABLES, REC_KEYED, SPK_KEYED, UTT_KEYED, fix_data_dir
from asr_gr.utils import ConfigError, DataError, atomic_path

# Files of a data dir that are copied as they are (no keys to rename), as Kaldi's copy_data_dir.sh does.
VERBATIM = ("frame_shift", "stm", "glm", "ctm")
# The command a perturbed wav.scp entry runs (python: the toolkit's environment, as path.sh sets it).
SPEED_TOOL = "python -m asr_gr.bin.data_utils speed"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def format_seconds(x: float) -> str:
    """A duration as Kaldi's tools print it (6 significant digits: awk's and C++'s default)."""
    return f"{x:.6g}"


def _same_dir(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _read(path: Path, *, allow_empty: bool = False):
    """A table and the line of each key (for errors about keys)."""
    return read_table(path, allow_empty_value=allow_empty), table_line_numbers(path)


# ------------------------------------------------------------------------------------------ durations

def _sf_reason(e: BaseException) -> str:
    """soundfile's message without its "Error opening <object>: " preamble."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return msg.split(": ", 1)[1] if msg.startswith("Error opening") and ": " in msg else msg


def _count_frames(sf_file) -> int:
    return sum(len(b) for b in sf_file.blocks(blocksize=1 << 16, dtype="int16", always_2d=True))


def entry_duration(value: str, where, *, read_entire_file: bool = False) -> float:
    """Seconds of audio of a wav.scp value (file, ``cmd |`` pipe or ``ark:offset``), as Kaldi's
    wav-to-duration: from the header of a file unless ``read_entire_file``; the output of a pipe
    is always read to its end (a streamed header may not know its length)."""
    import soundfile as sf

    path, line = where
    target = value.strip()
    if target.endswith("|"):
        cmd = target[:-1].strip()
        proc = subprocess.run(cmd, shell=True, capture_output=True)  # trusted input, as in Kaldi
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise DataError(path, line, f"command '{cmd}' failed with exit status {proc.returncode}"
                            + (f": {err[-1].strip()}" if err else ""))
        try:
            with sf.SoundFile(io.BytesIO(proc.stdout)) as f:
                return _count_frames(f) / f.samplerate
        except Exception as e:
            raise DataError(path, line, f"cannot read the output of command '{cmd}' as audio: "
                            f"{_sf_reason(e)}") from None
    ark = split_ark_entry(target)
    if ark and not Path(target).exists():
        rate, samples = _load_ark_audio(target, where)
        return samples.shape[0] / rate
    p = Path(target)
    if not p.is_file():
        raise DataError(path, line, f"audio file '{target}' does not exist")
    try:
        if read_entire_file:
            with sf.SoundFile(str(p)) as f:
                return _count_frames(f) / f.samplerate
        info = sf.info(str(p))
        return info.frames / info.samplerate
    except Exception as e:
        raise DataError(path, line, f"cannot read audio file '{target}': {_sf_reason(e)}") from None


def _load_ark_audio(target: str, where):
    import kaldiio

    path, line = where
    try:
        obj = kaldiio.load_mat(target)
    except Exception as e:
        raise DataError(path, line, f"cannot read ark entry '{target}': {e}") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataError(path, line, f"ark entry '{target}' holds a matrix, not audio")
    rate, samples = obj
    return int(rate), np.asarray(samples)


def _map_parallel(fn, items, nj: int):
    if nj <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor  # pipes and file reads wait outside the GIL

    with ThreadPoolExecutor(max_workers=nj) as pool:
        return list(pool.map(fn, items))


def compute_utt2dur(data_dir, *, nj: int = 1, read_entire_file: bool = False, frame_shift: float = 0.01,
                    log=_stderr) -> "OrderedDict[str, float]":
    """Every utterance's duration in seconds, as Kaldi's get_utt2dur.sh finds it (nothing is written):
    from ``segments`` (end - start; an end of -1 means the recording's end, which is read), else from
    the audio of ``wav.scp`` (``nj`` at a time), else from ``feats.scp``'s frame counts
    ((frames + 1.5) * frame shift; the frame shift of ``DIR/frame_shift`` when it exists)."""
    d = Path(data_dir)
    durs: "OrderedDict[str, float]" = OrderedDict()
    if (d / "segments").is_file():
        log(f"get_utt2dur.sh: getting durations from {d / 'segments'}")
        seg, seg_lines = _read(d / "segments")
        parsed = {u: parse_segment(v, (d / "segments", seg_lines[u])) for u, v in seg.items()}
        to_end = sorted({rec for rec, _, end in parsed.values() if end == -1})
        rec_dur = {}
        if to_end:
            wav, wav_lines = _read(d / "wav.scp")
            for rec in to_end:
                if rec not in wav:
                    u = next(u for u, (r, _, _) in parsed.items() if r == rec)
                    raise DataError(d / "segments", seg_lines[u], f"recording '{rec}' is not in {d / 'wav.scp'}")
            got = _map_parallel(lambda r: entry_duration(wav[r], (d / "wav.scp", wav_lines[r]),
                                                         read_entire_file=read_entire_file), to_end, nj)
            rec_dur = dict(zip(to_end, got))
        for u, (rec, start, end) in parsed.items():
            durs[u] = (rec_dur[rec] if end == -1 else end) - start
    elif (d / "wav.scp").is_file():
        log("get_utt2dur.sh: segments file does not exist so getting durations from wave files")
        wav, wav_lines = _read(d / "wav.scp")
        keys = list(wav)
        got = _map_parallel(lambda k: entry_duration(wav[k], (d / "wav.scp", wav_lines[k]),
                                                     read_entire_file=read_entire_file), keys, nj)
        durs.update(zip(keys, got))
    elif (d / "feats.scp").is_file():
        log("get_utt2dur.sh: wave file does not exist so getting durations from feats files")
        fs_file = d / "frame_shift"
        if fs_file.is_file() and fs_file.read_text().strip():
            text = fs_file.read_text().strip()
            try:
                frame_shift = float(text)
            except ValueError:
                raise DataError(fs_file, 1, f"expected a frame shift in seconds, got '{text}'") from None
            log(f"get_utt2dur.sh: using frame_shift={text} from file {fs_file}")
        for utt, n in _num_frames(d).items():
            durs[utt] = (n + 1.5) * frame_shift  # 1.5: the usual (frame length - shift) / shift
    else:
        raise DataError(d, None, "expected wav.scp, segments or feats.scp to exist")
    return durs


def _num_frames(d: Path) -> "OrderedDict[str, int]":
    """Frames per utterance of feats.scp (utt2num_frames when it lists exactly feats.scp's utterances)."""
    feats, feat_lines = _read(d / "feats.scp")
    if (d / "utt2num_frames").is_file():
        u2n, n_lines = _read(d / "utt2num_frames")
        if set(u2n) == set(feats):
            out = OrderedDict()
            for u, v in u2n.items():
                try:
                    out[u] = int(v)
                except ValueError:
                    raise DataError(d / "utt2num_frames", n_lines[u], f"expected a frame count, got '{v}'") from None
            return out
    import kaldiio

    out = OrderedDict()
    for u, v in feats.items():
        try:
            out[u] = int(kaldiio.load_mat(v).shape[0])
        except Exception as e:
            raise DataError(d / "feats.scp", feat_lines[u], f"cannot read features '{v}': {e}") from None
    return out


def get_utt2dur(data_dir, *, nj: int = 1, read_entire_file: bool = False, frame_shift: float = 0.01,
                log=_stderr) -> Path:
    """Write ``DIR/utt2dur`` as Kaldi's utils/data/get_utt2dur.sh does (see :func:`compute_utt2dur`);
    nothing is done when it exists already with exactly utt2spk's utterances. Fewer durations than
    utterances is a warning, fewer than half an error. Returns the path."""
    d = Path(data_dir)
    out = d / "utt2dur"
    u2s_path = d / "utt2spk"
    utts = set(read_table(u2s_path)) if u2s_path.is_file() else None
    if out.is_file() and out.stat().st_size > 0 and utts is not None:
        try:
            have = set(read_table(out))
        except DataError:
            have = None
        if have == utts:
            log(f"get_utt2dur.sh: {out} already exists with the expected length.  We won't recompute it.")
            return out
    durs = compute_utt2dur(d, nj=nj, read_entire_file=read_entire_file, frame_shift=frame_shift, log=log)
    if utts is not None and len(durs) != len(utts):
        log(f"get_utt2dur.sh: warning: length of utt2dur does not equal that of utt2spk, "
            f"{len(durs)} != {len(utts)}")
        if len(utts) > 2 * len(durs):
            raise DataError(out, None, f"less than half of the {len(utts)} utterances of {u2s_path} got a "
                            f"duration ({len(durs)}); nothing was written")
    write_table(out, {u: format_seconds(v) for u, v in durs.items()})
    log(f"get_utt2dur.sh: computed {out}")
    return out


# ------------------------------------------------------------------------------------------ combine

def _read_for_combine(path: Path):
    """key -> (value, line): blank lines skipped, a repeated identical line kept once; a key repeated
    with another value is an error (no rule picks the right one)."""
    out: "OrderedDict[str, tuple[str, int]]" = OrderedDict()
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataError(path, 1, "starts with a UTF-8 byte-order mark (BOM); save the file without it")
    for lineno, bline in enumerate(raw.split(b"\n"), 1):
        if not bline.strip():
            continue
        try:
            line = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise DataError(path, lineno, f"not valid UTF-8 (byte {e.start})") from None
        parts = line.strip().split(maxsplit=1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key in out:
            if out[key][0] != value:
                raise DataError(path, lineno, f"key '{key}' repeats line {out[key][1]} with a different value")
            continue
        out[key] = (value, lineno)
    return out


def _merge(name: str, sources, merged: dict, origin: dict) -> int:
    """Add ``sources`` [(path, {key: (value, line)})] into ``merged``; returns how many keys were given
    again (with the same value) by a later source. A key given again with another value is an error."""
    repeats = 0
    for path, table in sources:
        for key, (value, line) in table.items():
            if key in merged:
                if merged[key] != value:
                    first_path, first_line = origin[key]
                    raise DataError(path, line, f"{name}: '{key}' is '{value}' here but '{merged[key]}' in "
                                    f"{first_path}:{first_line}; the data dirs disagree")
                repeats += 1
                continue
            merged[key] = value
            origin[key] = (path, line)
    return repeats


def combine_data(dest, srcs, *, extra_files=(), skip_fix: bool = False, log=print, warn=_stderr) -> int:
    """Write ``dest``: the union of the data dirs ``srcs``, as Kaldi's utils/combine_data.sh does.

    A table is combined when every source has it; one that only some have is left out with a warning,
    except ``utt2uniq`` (an utterance maps to itself where it is missing) and ``segments`` (a source
    without one gets ``utt utt 0 duration``, its wav.scp then being keyed by recording = utterance).
    ``extra_files`` must exist in every source. Keys repeated across sources must have the same
    value (kept once); different values are an error naming both lines. spk2utt is regenerated,
    frame_shift copied (it must agree), the tables sorted, then fix_data_dir runs unless ``skip_fix``.
    Tables an earlier run left in ``dest`` are removed. Returns the number of utterances.
    """
    dest, srcs = Path(dest), [Path(s) for s in srcs]
    if not srcs:
        raise ConfigError("combine_data: give at least one source data dir")
    for s in srcs:
        if dest.exists() and _same_dir(dest, s):
            raise DataError(dest, None, "the destination is also one of the source data dirs; give a new directory")
        if not (s / "utt2spk").is_file():
            raise DataError(s / "utt2spk", None, "file does not exist; every source must be a data dir")
    extra_files = [f for f in extra_files if f]
    for f in extra_files:
        for s in srcs:
            if not (s / f).is_file():
                raise DataError(s / f, None, "file does not exist (it is one of --extra-files, which every "
                                "source must have)")
    frame_shift_src = None
    for s in srcs:
        if (s / "frame_shift").is_file():
            if frame_shift_src is not None and \
                    (s / "frame_shift").read_bytes() != (frame_shift_src / "frame_shift").read_bytes():
                raise DataError(s / "frame_shift", None, f"differs from {frame_shift_src / 'frame_shift'}; "
                                "cannot combine features of different frame shifts")
            frame_shift_src = s

    written: dict[str, dict] = {}
    if any((s / "utt2uniq").is_file() for s in srcs):
        parts = []
        for s in srcs:
            if (s / "utt2uniq").is_file():
                parts.append((s / "utt2uniq", _read_for_combine(s / "utt2uniq")))
            else:
                u2s = _read_for_combine(s / "utt2spk")
                parts.append((s / "utt2spk", OrderedDict((u, (u, ln)) for u, (_, ln) in u2s.items())))
        written["utt2uniq"] = _combine_one("utt2uniq", parts, log, warn)
    if any((s / "segments").is_file() for s in srcs):
        parts = []
        for s in srcs:
            if (s / "segments").is_file():
                parts.append((s / "segments", _read_for_combine(s / "segments")))
            else:
                warn(f"combine_data.sh [info]: will generate missing segments for {s}")
                durs = _read_for_combine(s / "utt2dur") if (s / "utt2dur").is_file() else None
                if durs is None:
                    durs = OrderedDict((u, (format_seconds(v), 0))
                                       for u, v in compute_utt2dur(s, log=lambda m: None).items())
                parts.append((s / "utt2dur", OrderedDict((u, (f"{u} 0 {v}", ln)) for u, (v, ln) in durs.items())))
        written["segments"] = _combine_one("segments", parts, log, warn)

    names = [n for n in ALL_TABLES if n not in ("spk2utt", "segments", "utt2uniq")]
    names += [f for f in extra_files if f not in names and f not in ("spk2utt", "segments", "utt2uniq")]
    for name in names:
        have = [s for s in srcs if (s / name).is_file()]
        if len(have) == len(srcs):
            written[name] = _combine_one(name, [(s / name, _read_for_combine(s / name)) for s in srcs], log, warn)
        elif have:
            lacking = [str(s) for s in srcs if s not in have]
            warn(f"combine_data.sh [info]: **not combining {name} as it does not exist everywhere** "
                 f"(missing from {', '.join(lacking)})")

    dest.mkdir(parents=True, exist_ok=True)
    for name in list(ALL_TABLES) + ["frame_shift"] + extra_files:  # nothing of an earlier run survives
        if (dest / name).is_file() and name not in written:
            (dest / name).unlink()
    for name, table in written.items():
        if name != "utt2spk":
            write_table(dest / name, table)
    u2s = written["utt2spk"]
    write_table(dest / "spk2utt", spk2utt_from_utt2spk(u2s))
    write_table(dest / "utt2spk", u2s)
    if frame_shift_src is not None:
        with atomic_path(dest / "frame_shift") as tmp:
            tmp.write_bytes((frame_shift_src / "frame_shift").read_bytes())
    if skip_fix:
        return len(u2s)
    reasons: list[str] = []
    kept, total = fix_data_dir(dest, reasons=reasons)
    for r in reasons:
        warn(f"fix_data_dir: {dest}: {r}")
    log(f"fix_data_dir: kept {kept} of {total} utterances")
    return kept


def _combine_one(name, parts, log, warn) -> dict:
    merged, origin = {}, {}
    repeats = _merge(name, parts, merged, origin)
    if repeats and name == "utt2spk":  # (a speaker or recording in several sources is normal)
        warn(f"combine_data.sh: {repeats} utterance(s) are in more than one source (with the same lines "
             "everywhere: kept once)")
    log(f"combine_data.sh: combined {name}")
    return merged


# ------------------------------------------------------------------------------------------ copy

def _renamed(table, lines, path, mapping, what: str, *, map_values=None) -> dict:
    """``table`` with each key renamed by ``mapping`` (and each value by ``map_values``); a key that
    ``mapping`` lacks is an error, as in Kaldi's apply_map.pl."""
    where = {"utterance": "is not in utt2spk", "speaker": "has no utterance in utt2spk",
             "recording": "is not in wav.scp"}[what]
    out = {}
    for key, value in table.items():
        if key not in mapping:
            raise DataError(path, lines[key], f"{what} '{key}' {where}; run utils/fix_data_dir.sh "
                            f"{path.parent} first")
        out[mapping[key]] = map_values(value) if map_values else value
    return out


def _speaker_map(u2s, prefix: str, suffix: str) -> dict:
    return {s: f"{prefix}{s}{suffix}" for s in set(u2s.values())}


def parse_validate_opts(opts: str) -> dict:
    """Kaldi's validate_data_dir.sh options (``--no-feats --no-text --no-wav --non-print
    --no-spk-sort``) as keyword arguments of :func:`asr_gr.data.kaldi_dir.validate_data_dir`."""
    kw = {}
    for word in shlex.split(opts or ""):
        if word == "--no-feats":
            kw["no_feats"] = True
        elif word == "--no-text":
            kw["no_text"] = True
        elif word == "--no-wav":
            kw["no_wav"] = True
        elif word in ("--non-print", "--no-spk-sort"):
            pass  # checks asr_gr's validator does not make
        else:
            raise ConfigError(f"--validate-opts: unknown option '{word}' of validate_data_dir.sh (known: "
                              "--no-feats --no-text --no-wav --non-print --no-spk-sort)")
    return kw


def _write_all(dest: Path, tables: dict, verbatim: dict) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if name != "utt2spk":
            write_table(dest / name, table)
    write_table(dest / "spk2utt", spk2utt_from_utt2spk(tables["utt2spk"]))
    for name, src in verbatim.items():
        with atomic_path(dest / name) as tmp:
            tmp.write_bytes(src.read_bytes())
    write_table(dest / "utt2spk", tables["utt2spk"])  # last: its presence marks a complete dir


def copy_data_dir(src, dest, *, utt_prefix: str = "", utt_suffix: str = "", spk_prefix: str = "",
                  spk_suffix: str = "", validate_opts: str = "", log=print, warn=_stderr) -> list[str]:
    """Copy data dir ``src`` to ``dest`` as Kaldi's utils/copy_data_dir.sh does, renaming utterances
    ``<utt-prefix>utt<utt-suffix>`` and speakers ``<spk-prefix>spk<spk-suffix>`` in every table
    (utt2spk's values, spk2gender, cmvn.scp, text, feats.scp, utt2dur, segments, ...). With
    ``segments``, wav.scp is keyed by recording and copied unchanged; without, its keys are
    utterances and are renamed. A renamed utterance gets a ``utt2uniq`` line naming the original one
    (or keeps the original's utt2uniq value). ``utt2spkid`` keeps its values (a person, not a CMVN
    speaker). Tables of ``dest`` that ``src`` lacks are moved to ``dest/.backup/``. ``dest`` is then
    validated (``validate_opts``: validate_data_dir.sh's options; ``--no-feats``/``--no-text`` are
    added when src has no feats.scp/text). Returns the validation errors (empty when valid).
    """
    src, dest = Path(src), Path(dest)
    validate_kw = parse_validate_opts(validate_opts)
    if not (src / "utt2spk").is_file():
        raise DataError(src / "utt2spk", None, "file does not exist; the source must be a data dir")
    if dest.exists() and _same_dir(src, dest):
        raise DataError(dest, None, "the destination is the source data dir; give a new directory")
    u2s, u2s_lines = _read(src / "utt2spk")
    utt_map = {u: f"{utt_prefix}{u}{utt_suffix}" for u in u2s}
    spk_map = _speaker_map(u2s, spk_prefix, spk_suffix)
    segmented = (src / "segments").is_file()
    tables: dict[str, dict] = {}
    for name in UTT_KEYED + REC_KEYED + SPK_KEYED:
        p = src / name
        if not p.is_file():
            continue
        table, lines = _read(p, allow_empty=(name == "text"))
        if name == "utt2spk":
            tables[name] = {utt_map[u]: spk_map[s] for u, s in table.items()}
        elif name in SPK_KEYED:
            tables[name] = _renamed(table, lines, p, spk_map, "speaker")
        elif segmented and (name in REC_KEYED or name == "wav.scp"):
            tables[name] = dict(table)  # keyed by recording: unchanged
        else:
            tables[name] = _renamed(table, lines, p, utt_map, "utterance")
    if "utt2uniq" not in tables and (utt_prefix or utt_suffix):
        tables["utt2uniq"] = {utt_map[u]: u for u in u2s}
    verbatim = {n: src / n for n in VERBATIM if (src / n).is_file()}
    _write_all(dest, tables, verbatim)
    for name in ALL_TABLES + VERBATIM:
        if (dest / name).is_file() and name not in tables and name not in verbatim and name != "spk2utt":
            warn(f"copy_data_dir.sh: file {name} exists in dest {dest} but not in src {src}.  Moving it to "
                 f"{dest / '.backup' / name}")
            (dest / ".backup").mkdir(exist_ok=True)
            (dest / name).replace(dest / ".backup" / name)
    log(f"copy_data_dir.sh: copied data from {src} to {dest}")
    if not (src / "feats.scp").is_file():
        validate_kw["no_feats"] = True
    if not (src / "text").is_file():
        validate_kw["no_text"] = True
    validate_kw.setdefault("no_feats", False)
    return validate_data_dir(dest, **validate_kw)


# ------------------------------------------------------------------------------------------ speed

def parse_factor(text: str) -> float:
    try:
        f = float(text)
    except ValueError:
        f = float("nan")
    if not math.isfinite(f) or f <= 0:
        raise ConfigError(f"speed factor must be a positive number (e.g. 0.9), got '{text}'")
    return f


def speed_fraction(factor: float) -> tuple[int, int]:
    """(orig, new) rates of the resampling that plays audio ``factor`` times as fast, as
    asr_gr.features.perturb.speed_perturb chooses them."""
    frac = Fraction(factor).limit_denominator(1000)
    return frac.numerator, frac.denominator


def _sinc_kernel(orig: int, new: int, width_zeros: int = 6, rolloff: float = 0.99):
    """torchaudio.functional.resample's kernel (sinc_interp_hann), the same float arithmetic."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64) / orig
    t = (np.arange(0, -new, -1) / new).astype(np.float32).astype(np.float64)[:, None] + idx[None, :]
    t *= base
    t = np.clip(t, -width_zeros, width_zeros)
    window = np.cos(t * math.pi / width_zeros / 2) ** 2
    t *= math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel *= window * (base / orig)
    return kernel.astype(np.float32), width


def speed_resample(samples: np.ndarray, factor: float) -> np.ndarray:
    """``samples`` ((frames,) or (frames, channels), float) played ``factor`` times as fast: about
    frames / factor frames, tempo and pitch scaled by ``factor`` (sox's ``speed``). Numerically
    torchaudio's resampling from ``orig`` to ``new`` Hz (:func:`speed_fraction`)."""
    orig, new = speed_fraction(factor)
    x = np.asarray(samples, dtype=np.float32)
    if orig == new:
        return x.copy()
    mono = x.ndim == 1
    chans = x[None, :] if mono else x.T  # (channels, frames)
    length = chans.shape[1]
    kernel, width = _sinc_kernel(orig, new)
    taps = kernel.shape[1]
    padded = np.pad(chans, ((0, 0), (width, width + orig)))
    n_blocks = (padded.shape[1] - taps) // orig + 1
    target = math.ceil(new * length / orig)
    out = np.empty((chans.shape[0], n_blocks * new), dtype=np.float32)
    step = 1 << 15  # blocks per matmul: bounds the memory of the strided copy
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=1)[:, ::orig, :]
    for a in range(0, n_blocks, step):
        b = min(a + step, n_blocks)
        out[:, a * new:b * new] = (windows[:, a:b, :] @ kernel.T).reshape(chans.shape[0], -1)
    out = out[:, :target]
    return out[0] if mono else out.T.copy()


def _read_input_audio(spec: str):
    """(samples (frames, channels) float32, rate, subtype) of '-' (standard input), a file or an ark
    entry."""
    import soundfile as sf

    if spec == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise DataError("<stdin>", None, "no audio on standard input")
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                return f.read(dtype="float32", always_2d=True), f.samplerate, f.subtype
        except Exception as e:
            raise DataError("<stdin>", None, f"cannot read standard input as audio: {_sf_reason(e)}") from None
    ark = split_ark_entry(spec)
    if ark and not Path(spec).exists():
        rate, arr = _load_ark_audio(spec, (spec, None))
        subtype = "PCM_16" if arr.dtype == np.int16 else "FLOAT"
        from asr_gr.data.audio import _int_to_float

        arr = _int_to_float(arr)
        return (arr[:, None] if arr.ndim == 1 else arr), rate, subtype
    if not Path(spec).is_file():
        raise DataError(spec, None, "audio file does not exist")
    try:
        with sf.SoundFile(spec) as f:
            return f.read(dtype="float32", always_2d=True), f.samplerate, f.subtype
    except Exception as e:
        raise DataError(spec, None, f"cannot read audio file: {_sf_reason(e)}") from None


def speed_wav(factor_text: str, spec: str, out) -> None:
    """Write to binary stream ``out`` a WAV of the audio ``spec`` ('-', a file or an ark entry) played
    ``factor`` times as fast, at its own sample rate: 16-bit PCM when the input is, else float."""
    import soundfile as sf

    factor = parse_factor(factor_text)
    samples, rate, subtype = _read_input_audio(spec)
    y = speed_resample(samples, factor)
    buf = io.BytesIO()
    if subtype == "PCM_16":
        pcm = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
        sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    else:
        sf.write(buf, y, rate, format="WAV", subtype="FLOAT")
    out.write(buf.getvalue())
    out.flush()


def speed_pipe(value: str, factor_text: str) -> str:
    """The wav.scp value that reads ``value`` (a file, ark entry or ``cmd |``) speed-perturbed by the
    factor, as Kaldi's ``sox ... speed F |`` entries do."""
    tool = f"{SPEED_TOOL} {factor_text}"
    v = value.strip()
    if v.endswith("|"):
        return f"{v[:-1].rstrip()} | {tool} - |"
    return f"{tool} {shlex.quote(v)} |"


def perturb_data_dir_speed(factor_text: str, src, dest, *, utt_extra_files=(), log=print,
                           warn=_stderr) -> list[str]:
    """Write ``dest``: ``src`` speed-perturbed by ``factor`` (given as text, e.g. "0.9"), as Kaldi's
    utils/perturb_data_dir_speed.sh does. Utterances, speakers and (with segments) recordings are
    renamed ``sp<factor>-<id>``, with the factor as written; wav.scp entries become pipes through
    ``python -m asr_gr.bin.data_utils speed <factor>`` (see the module docstring); utt2dur (computed
    into ``src`` first when missing, as Kaldi does) and reco2dur are divided by the factor, segment
    times too (two decimals; a segment that would last 0.01 s or less is dropped); utt2uniq maps
    each new utterance to the original; text, spk2gender, utt2lang, utt2spkid (its values kept),
    reco2file_and_channel and ``utt_extra_files`` are renamed. Features (feats.scp, cmvn.scp,
    utt2num_frames) and vad.scp are not copied: they no longer match the audio. Returns the
    errors of validating ``dest`` as ``validate_data_dir.sh --no-feats --no-text`` does."""
    src, dest = Path(src), Path(dest)
    factor = parse_factor(factor_text)
    prefix = f"sp{factor_text}-"
    if not (src / "utt2spk").is_file():
        raise DataError(src / "utt2spk", None, "file does not exist; the source must be a data dir")
    if dest.exists() and _same_dir(src, dest):
        raise DataError(dest, None, "this script requires <srcdir> and <destdir> to be different")
    u2s, _ = _read(src / "utt2spk")
    utt_map = {u: prefix + u for u in u2s}
    spk_map = _speaker_map(u2s, prefix, "")
    segmented = (src / "segments").is_file()
    tables: dict[str, dict] = {}
    wav, wav_lines = _read(src / "wav.scp") if (src / "wav.scp").is_file() else ({}, {})
    rec_map = {r: prefix + r for r in wav} if segmented else utt_map
    if (src / "wav.scp").is_file():
        piped = {k: speed_pipe(v, factor_text) for k, v in wav.items()}
        tables["wav.scp"] = _renamed(piped, wav_lines, src / "wav.scp", rec_map,
                                     "recording" if segmented else "utterance")
    dropped: list[str] = []
    if segmented:
        seg, seg_lines = _read(src / "segments")
        segs = {}
        for u, v in seg.items():
            rec, start, end = parse_segment(v, (src / "segments", seg_lines[u]))
            if u not in utt_map:
                raise DataError(src / "segments", seg_lines[u], f"utterance '{u}' is not in utt2spk")
            if rec not in rec_map:
                raise DataError(src / "segments", seg_lines[u], f"recording '{rec}' is not in {src / 'wav.scp'}")
            s = start / factor
            if end == -1:
                segs[utt_map[u]] = f"{rec_map[rec]} {s:.2f} -1"
                continue
            e = end / factor
            if e > s + 0.01:
                segs[utt_map[u]] = f"{rec_map[rec]} {s:.2f} {e:.2f}"
            else:
                dropped.append(u)
        tables["segments"] = segs
    if dropped:
        warn(f"perturb_data_dir_speed.sh: {len(dropped)} segment(s) would last 0.01 s or less after the "
             f"perturbation and were left out (first: '{dropped[0]}')")
    keep = {u for u in u2s if u not in set(dropped)}
    tables["utt2spk"] = {utt_map[u]: spk_map[s] for u, s in u2s.items() if u in keep}
    if (src / "utt2uniq").is_file():
        uniq, lines = _read(src / "utt2uniq")
        tables["utt2uniq"] = _renamed(uniq, lines, src / "utt2uniq", utt_map, "utterance")
    else:
        tables["utt2uniq"] = {utt_map[u]: u for u in u2s}
    for name in ("text", "utt2lang", "utt2spkid", *utt_extra_files):
        p = src / name
        if p.is_file():
            table, lines = _read(p, allow_empty=(name == "text"))
            tables[name] = _renamed(table, lines, p, utt_map, "utterance")
        elif name in utt_extra_files:
            raise DataError(p, None, "file does not exist (it is one of --utt-extra-files)")
    if (src / "spk2gender").is_file():
        table, lines = _read(src / "spk2gender")
        tables["spk2gender"] = _renamed(table, lines, src / "spk2gender", spk_map, "speaker")
    if (src / "reco2file_and_channel").is_file():
        table, lines = _read(src / "reco2file_and_channel")
        tables["reco2file_and_channel"] = _renamed(table, lines, src / "reco2file_and_channel", rec_map, "recording")
    if not (src / "utt2dur").is_file():
        get_utt2dur(src, log=warn)
    u2d, lines = _read(src / "utt2dur")
    tables["utt2dur"] = {k: format_seconds(float(v) / factor)
                         for k, v in _renamed(u2d, lines, src / "utt2dur", utt_map, "utterance").items()}
    if (src / "reco2dur").is_file():
        table, lines = _read(src / "reco2dur")
        tables["reco2dur"] = {k: format_seconds(float(v) / factor)
                              for k, v in _renamed(table, lines, src / "reco2dur", rec_map, "recording").items()}
    for name in tables if dropped else ():  # utterance tables keep the utterances that are left
        if (name in UTT_KEYED and name != "wav.scp") or name in utt_extra_files:
            tables[name] = {k: v for k, v in tables[name].items() if k[len(prefix):] in keep}
    _write_all(dest, tables, {})
    for name in list(ALL_TABLES) + list(VERBATIM):
        if (dest / name).is_file() and name not in tables and name != "spk2utt":
            (dest / name).unlink()  # of an earlier run; would not match the new tables
    log(f"perturb_data_dir_speed.sh: generated speed-perturbed version of data in {src}, in {dest}")
    if (src / "vad.scp").is_file():
        warn(f"perturb_data_dir_speed.sh: warning: not copying vad.scp to {dest}, which is not speed-perturbed.")
    return validate_data_dir(dest, no_text=True, no_feats=True)
