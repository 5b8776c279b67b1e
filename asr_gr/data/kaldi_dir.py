"""Kaldi data directories: read, write and validate.

A data dir holds line-oriented tables keyed by utterance (wav.scp, text, utt2spk, utt2num_frames,
feats.scp, utt2spkid) or by speaker (spk2utt, spk2gender). Keys are unique and sorted in C order
(byte order, which equals code-point order for UTF-8). Every error names ``file:line: reason``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

from asr_gr.utils import DataError, atomic_path

UTT_TABLES = ("wav.scp", "text", "utt2spk", "utt2dur", "utt2num_frames", "feats.scp", "utt2spkid")
SPK_TABLES = ("spk2utt", "spk2gender")


# An ark entry of a scp table: "path:offset", optionally with a Kaldi range "[a:b]" or "[a:b,c:d]".
_ARK_ENTRY = re.compile(r"^(?P<path>.+):(?P<offset>\d+)(?P<range>\[[0-9:,\s]*\])?$")


def split_ark_entry(value: str) -> tuple[str, str] | None:
    """``"dir/x.ark:123[0:9]"`` -> ``("dir/x.ark", ":123[0:9]")``; None for pipes and bare files."""
    value = value.strip()
    if value.endswith("|"):
        return None
    m = _ARK_ENTRY.match(value)
    if m is None:
        return None
    return m.group("path"), value[len(m.group("path")):]


def read_table(path, *, allow_empty_value: bool = False) -> "OrderedDict[str, str]":
    """Read ``key value...`` lines into an ordered dict of key -> rest of line.

    Raises DataError naming the line for: bytes that are not UTF-8, a line with no value
    (unless ``allow_empty_value``), a duplicate key.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, None, "file does not exist") from None
    out: "OrderedDict[str, str]" = OrderedDict()
    check_no_bom(path, raw)
    blines = raw.split(b"\n")
    if blines and blines[-1] == b"":
        blines.pop()  # the newline that ends the last line
    for lineno, bline in enumerate(blines, 1):
        if not bline.strip():
            raise DataError(path, lineno, "empty line")
        try:
            line = bline.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, lineno, f"not valid UTF-8 (byte {e.start})") from None
        line = line.rstrip("\r")
        parts = line.strip().split(maxsplit=1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        if not value and not allow_empty_value:
            raise DataError(path, lineno, f"key '{key}' has no value")
        if key in out:
            raise DataError(path, lineno, f"duplicate key '{key}'")
        out[key] = value
    return out


def check_no_bom(path, raw: bytes) -> None:
    """A UTF-8 byte-order mark would glue itself to the first key (which then matches nothing in the
    other files): name it instead."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise DataError(path, 1, "starts with a UTF-8 byte-order mark (BOM, bytes EF BB BF); save the file "
                        "without it, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE")


def table_line_numbers(path) -> dict[str, int]:
    """Map key -> 1-based line number, for error messages about cross-file consistency."""
    lines = {}
    with open(path, "rb") as f:
        for lineno, bline in enumerate(f, 1):
            parts = bline.split(maxsplit=1)
            if parts:
                lines.setdefault(parts[0].decode("utf-8", "replace"), lineno)
    return lines


def write_table(path, table, *, sort: bool = True) -> None:
    """Write ``key value`` lines atomically (temp file, then rename), sorted in C order by default."""
    items = sorted(table.items()) if sort else list(table.items())
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for k, v in items:
                if isinstance(v, (list, tuple)):
                    v = " ".join(str(x) for x in v)
                f.write(f"{k} {v}\n")


def spk2utt_from_utt2spk(utt2spk) -> "OrderedDict[str, list[str]]":
    spk2utt: "OrderedDict[str, list[str]]" = OrderedDict()
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return OrderedDict(sorted(spk2utt.items()))


def write_data_dir(data_dir, *, wav_scp, utt2spk, text=None, spk2gender=None, utt2spkid=None,
                   utt2dur=None) -> None:
    """Write a Kaldi data dir; spk2utt is derived from utt2spk. Optional tables are skipped when None."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    write_table(d / "wav.scp", wav_scp)
    write_table(d / "utt2spk", utt2spk)
    write_table(d / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    if text is not None:
        write_table(d / "text", text)
    if spk2gender is not None:
        spks = set(utt2spk.values())
        write_table(d / "spk2gender", {s: g for s, g in spk2gender.items() if s in spks})
    if utt2spkid is not None:
        write_table(d / "utt2spkid", utt2spkid)
    if utt2dur is not None:
        write_table(d / "utt2dur", {k: f"{v:.3f}" for k, v in utt2dur.items()})


def validate_data_dir(data_dir, *, no_text: bool = False, no_feats: bool = True,
                      no_wav: bool = False) -> list[str]:
    """Run Kaldi's validate_data_dir.sh checks; return one ``file:line: reason`` string per problem."""
    d = Path(data_dir)
    errors: list[str] = []
    tables: dict[str, "OrderedDict[str, str]"] = {}

    required = ["utt2spk", "spk2utt"]
    if not no_wav and not (d / "feats.scp").exists():
        required.append("wav.scp")
    if not no_text:
        required.append("text")
    if not no_feats:
        required.append("feats.scp")
    for name in required:
        if not (d / name).exists():
            errors.append(f"{d / name}: required file is missing")

    for name in UTT_TABLES + ("segments",) + SPK_TABLES:
        p = d / name
        if not p.exists():
            continue
        try:
            tables[name] = read_table(p, allow_empty_value=False)
        except DataError as e:
            errors.append(str(e))
            continue
        keys = list(tables[name])
        for i in range(1, len(keys)):
            if keys[i] < keys[i - 1]:
                lines = table_line_numbers(p)
                errors.append(f"{p}:{lines[keys[i]]}: not sorted in C order ('{keys[i]}' after "
                              f"'{keys[i - 1]}'); run utils/fix_data_dir.sh")
                break

    if "utt2spk" not in tables:
        return errors
    utts = set(tables["utt2spk"])
    for name in UTT_TABLES + ("segments",):
        if name not in tables or name == "utt2spk":
            continue
        if name == "wav.scp" and (d / "segments").exists():
            continue  # keyed by recording; checked against segments below
        p = d / name
        other = set(tables[name])
        missing = sorted(utts - other)
        extra = sorted(other - utts)
        if missing:
            errors.append(f"{p}: utterance '{missing[0]}' (in utt2spk) is missing here"
                          + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if extra:
            lines = table_line_numbers(p)
            errors.append(f"{p}:{lines[extra[0]]}: utterance '{extra[0]}' is not in utt2spk"
                          + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    if "utt2spk" in tables:
        for utt, spk in tables["utt2spk"].items():
            if len(spk.split()) != 1:
                lines = table_line_numbers(d / "utt2spk")
                errors.append(f"{d / 'utt2spk'}:{lines[utt]}: speaker must be one token, got '{spk}'")
                break
    if "spk2utt" in tables:
        expect = spk2utt_from_utt2spk(tables["utt2spk"])
        got = {s: sorted(v.split()) for s, v in tables["spk2utt"].items()}
        if got != {s: sorted(v) for s, v in expect.items()}:
            bad = sorted(set(expect) ^ set(got)) or sorted(s for s in got if got[s] != sorted(expect[s]))
            errors.append(f"{d / 'spk2utt'}: does not match utt2spk (first differing speaker "
                          f"'{bad[0]}'); regenerate it with utils/fix_data_dir.sh")
    if "segments" in tables:
        errors.extend(_check_segments(d, tables["segments"], tables.get("wav.scp")))
    if "utt2spkid" in tables:
        errors.extend(_check_utt2spkid(d, tables["utt2spk"], tables["utt2spkid"]))
    if "spk2gender" in tables:
        spks = set(tables["utt2spk"].values())
        lines = table_line_numbers(d / "spk2gender")
        for spk, g in tables["spk2gender"].items():
            if spk not in spks:
                errors.append(f"{d / 'spk2gender'}:{lines[spk]}: speaker '{spk}' is not in utt2spk")
                break
            if g not in ("m", "f"):
                errors.append(f"{d / 'spk2gender'}:{lines[spk]}: gender must be 'm' or 'f', got '{g}'")
                break
    return errors


def parse_segment(value: str, where, *, check_times: bool = True) -> tuple[str, float, float]:
    """A ``segments`` value (``recording start end``, seconds; ``end == -1``: to the recording's end) as
    (recording, start, end). A line that is malformed raises DataError naming ``where`` = (file, line);
    so do times outside ``0 <= start < end`` unless ``check_times`` is False (see :func:`segment_time_error`)."""
    path, line = where
    parts = value.split()
    if len(parts) != 3:
        raise DataError(path, line, f"expected 'utt recording start end', got {len(parts) + 1} fields")
    rec, s, e = parts
    try:
        start, end = float(s), float(e)
    except ValueError:
        raise DataError(path, line, f"start and end must be numbers (seconds), got '{s}' and '{e}'") from None
    if check_times:
        reason = segment_time_error(start, end, s, e)
        if reason:
            raise DataError(path, line, reason)
    return rec, start, end


def segment_time_error(start: float, end: float, s: str | None = None, e: str | None = None) -> str | None:
    """Why a segment's times are impossible (None if they are fine): 0 <= start < end, or end -1."""
    s = s if s is not None else f"{start:g}"
    e = e if e is not None else f"{end:g}"
    if start < 0:
        return f"start time {s} is negative"
    if end != -1 and start >= end:
        return f"start time {s} is not before end time {e}"
    return None


def _check_segments(d: Path, segments, wav_scp) -> list[str]:
    """segments lines are ``utt recording start end``: recording in wav.scp, 0 <= start < end (or end -1)."""
    p = d / "segments"
    lines = table_line_numbers(p)
    for utt, value in segments.items():
        try:
            rec, _, _ = parse_segment(value, (p, lines[utt]))
        except DataError as err:
            return [str(err)]
        if wav_scp is not None and rec not in wav_scp:
            return [f"{p}:{lines[utt]}: recording '{rec}' of utterance '{utt}' is not in wav.scp"]
    return []


def _check_utt2spkid(d: Path, utt2spk, utt2spkid) -> list[str]:
    """One token per utterance; all utterances of one utt2spk speaker share one utt2spkid."""
    p = d / "utt2spkid"
    lines = table_line_numbers(p)
    first: dict[str, tuple[str, str]] = {}
    for utt, sid in utt2spkid.items():
        if len(sid.split()) != 1:
            return [f"{p}:{lines[utt]}: speaker id must be one token, got '{sid}'"]
        spk = utt2spk.get(utt)
        if spk is None:
            continue
        if spk in first and first[spk][1] != sid:
            other, other_sid = first[spk]
            return [f"{p}:{lines[utt]}: utterance '{utt}' has speaker id '{sid}' but '{other}' of the same "
                    f"utt2spk speaker '{spk}' has '{other_sid}'"]
        first.setdefault(spk, (utt, sid))
    return []


def read_text_file(path) -> "OrderedDict[str, str]":
    """Read a Kaldi ``text`` file: every transcript must be non-empty. Whitespace inside a transcript
    (TABs, runs of spaces) becomes one space: words are what the file separates, as Kaldi reads it."""
    table = read_table(path, allow_empty_value=True)
    for utt, txt in table.items():
        table[utt] = " ".join(txt.split())
    lines = None
    for utt, txt in table.items():
        if not txt.strip():
            lines = lines or table_line_numbers(path)
            raise DataError(path, lines[utt], f"utterance '{utt}' has an empty transcript")
    return table


def load_utt2spk(data_dir, utts=None) -> "OrderedDict[str, str]":
    """utt2spk of a data dir; when ``utts`` is given, every one must be present."""
    p = Path(data_dir) / "utt2spk"
    u2s = read_table(p)
    if utts is not None:
        for utt in utts:
            if utt not in u2s:
                raise DataError(p, None, f"utterance '{utt}' is missing from utt2spk")
    return u2s


def speaker_labels(data_dir, utts=None) -> "OrderedDict[str, str]":
    """The speaker-classifier label of every utterance: ``utt2spkid`` if present, else utt2spk.

    Kaldi's utt2spk is the CMVN speaker (LibriSpeech: reader-chapter); utt2spkid, when a recipe writes
    it, is the identity a speaker classifier learns (LibriSpeech: the reader).
    """
    d = Path(data_dir)
    if (d / "utt2spkid").exists():
        table = read_table(d / "utt2spkid")
        if utts is not None:
            for utt in utts:
                if utt not in table:
                    raise DataError(d / "utt2spkid", None, f"utterance '{utt}' is missing")
        return table
    return load_utt2spk(d, utts)
