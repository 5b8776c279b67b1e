"""Kaldi data-dir operations: fix (as utils/fix_data_dir.sh), subset (utils/subset_data_dir.sh) and
split into parallel jobs (utils/split_data.sh).

Tables are grouped by what their first field names:

* utterances: text utt2spk utt2dur utt2num_frames feats.scp utt2spkid segments utt2uniq utt2lang utt2warp
  vad.scp utt2category, and wav.scp when there is no ``segments`` file;
* recordings: wav.scp when ``segments`` exists, reco2file_and_channel, reco2dur (without segments a
  recording is an utterance);
* speakers: spk2utt (always regenerated from utt2spk), spk2gender, cmvn.scp, spk2warp.

Every output table is written sorted in C order and atomically (:func:`write_table`). Files that are
not tables of this list (conf/, frame_shift, ...) are left alone by fix and not copied by subset/split.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import OrderedDict
from pathlib import Path

from asr_gr.data.kaldi_dir import (parse_segment, read_table, segment_time_error, spk2utt_from_utt2spk,
                                   table_line_numbers, write_table)
from asr_gr.utils import DataError, atomic_path

UTT_KEYED = ("wav.scp", "text", "utt2spk", "utt2dur", "utt2num_frames", "feats.scp", "utt2spkid", "segments",
             "utt2uniq", "utt2lang", "utt2warp", "vad.scp", "utt2category")
REC_KEYED = ("reco2file_and_channel", "reco2dur")  # + wav.scp when segments exists
SPK_KEYED = ("spk2gender", "cmvn.scp", "spk2warp")  # + spk2utt, regenerated from utt2spk
ALL_TABLES = UTT_KEYED + REC_KEYED + SPK_KEYED + ("spk2utt",)


class _Layout:
    """Which known tables a data dir has, and what each one is keyed by."""

    def __init__(self, d: Path):
        self.dir = d
        present = [n for n in ALL_TABLES if (d / n).is_file()]
        self.segmented = "segments" in present
        self.utt = [n for n in present if n in UTT_KEYED and not (n == "wav.scp" and self.segmented)]
        self.rec = [n for n in present if n in REC_KEYED or (n == "wav.scp" and self.segmented)]
        self.spk = [n for n in present if n in SPK_KEYED]
        self.present = present


def _read_loose(path: Path):
    """Read a table for fix_data_dir: tolerate any order, blank lines, repeated identical lines, CRLF.

    Returns (table, empty_keys, line_of): keys with no value are left out of ``table`` and listed in
    ``empty_keys``. A repeated key with a different value or bytes that are not UTF-8 raise DataError:
    no rule can pick the right one.
    """
    table: "OrderedDict[str, str]" = OrderedDict()
    line_of: dict[str, int] = {}
    empty: list[str] = []
    for lineno, bline in enumerate(path.read_bytes().split(b"\n"), 1):
        if not bline.strip():
            continue
        try:
            line = bline.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            raise DataError(path, lineno, f"not valid UTF-8 (byte {e.start})") from None
        parts = line.strip().split(maxsplit=1)
        key, value = parts[0], (parts[1].strip() if len(parts) > 1 else "")
        if key in line_of:
            old = table.get(key, "")
            if old != value:
                raise DataError(path, lineno, f"key '{key}' repeats line {line_of[key]} with a different "
                                "value; remove one of them")
            continue
        line_of[key] = lineno
        if value:
            table[key] = value
        else:
            empty.append(key)
    return table, empty, line_of


def _recordings_of(tables, layout: _Layout, utts) -> set[str]:
    if layout.segmented:
        return {tables["segments"][u].split()[0] for u in utts}
    return set(utts)


def _write_subset(tables, layout: _Layout, dst: Path, utts) -> None:
    """Write every known table of ``tables`` restricted to ``utts`` (and their speakers/recordings)."""
    utts = set(utts)
    dst.mkdir(parents=True, exist_ok=True)
    u2s = {u: s for u, s in tables["utt2spk"].items() if u in utts}
    spks = set(u2s.values())
    recs = _recordings_of(tables, layout, utts)
    written = set()
    for name in layout.utt:
        if name == "utt2spk":
            continue
        write_table(dst / name, {k: v for k, v in tables[name].items() if k in utts})
        written.add(name)
    for name in layout.rec:
        write_table(dst / name, {k: v for k, v in tables[name].items() if k in recs})
        written.add(name)
    for name in layout.spk:
        write_table(dst / name, {k: v for k, v in tables[name].items() if k in spks})
        written.add(name)
    write_table(dst / "spk2utt", spk2utt_from_utt2spk(u2s))
    write_table(dst / "utt2spk", u2s)  # last: its presence marks a complete dir
    written |= {"spk2utt", "utt2spk"}
    for name in ALL_TABLES:  # a table the source no longer has must not survive from an earlier run
        if name not in written and (dst / name).is_file():
            (dst / name).unlink()


# --------------------------------------------------------------------------------------------- fix

def fix_data_dir(data_dir, *, reasons: list | None = None) -> tuple[int, int]:
    """Make a data dir consistent, as Kaldi's utils/fix_data_dir.sh does; return (kept, total).

    Copies the tables to ``data_dir/.backup/`` first, then: sorts every table in C order (removing
    blank lines and repeated identical lines), keeps only the utterances present in every
    utterance-keyed table (with ``segments``, wav.scp is keyed by recording: an utterance whose
    recording is missing is dropped, and recordings no utterance uses are removed), drops utterances
    with an empty transcript or an empty segment, regenerates spk2utt from utt2spk and filters the
    speaker tables (spk2gender, cmvn.scp) to the remaining speakers. ``total`` is the number of
    utterances in utt2spk, ``kept`` those left. When ``reasons`` is a list, one line per cause of
    dropped lines is appended to it.
    """
    d = Path(data_dir)
    if not (d / "utt2spk").is_file():
        raise DataError(d / "utt2spk", None, "file does not exist; a data dir needs utt2spk")
    layout = _Layout(d)
    backup = d / ".backup"
    backup.mkdir(exist_ok=True)
    for name in layout.present:
        with atomic_path(backup / name) as tmp:
            shutil.copyfile(d / name, tmp)

    tables, empties, lines = {}, {}, {}
    for name in layout.present:
        if name != "spk2utt":
            tables[name], empties[name], lines[name] = _read_loose(d / name)
    notes = reasons if reasons is not None else []
    u2s = tables["utt2spk"]
    for utt, spk in u2s.items():
        if len(spk.split()) != 1:
            raise DataError(d / "utt2spk", lines["utt2spk"][utt], f"speaker must be one token, got '{spk}'")
    total = len(u2s) + len(empties["utt2spk"])
    if empties["utt2spk"]:
        notes.append(f"{len(empties['utt2spk'])} utterance(s) with no speaker in utt2spk "
                     f"(first: '{empties['utt2spk'][0]}')")

    keep = set(u2s)
    for name in layout.utt:
        if name == "utt2spk":
            continue
        have = set(tables[name])
        if name == "text" and empties[name]:
            gone = sorted(keep & set(empties[name]))
            if gone:
                notes.append(f"{len(gone)} utterance(s) with an empty transcript in text (first: '{gone[0]}')")
            keep -= set(gone)
        missing = sorted(keep - have)
        if missing:
            notes.append(f"{len(missing)} utterance(s) missing from {name} (first: '{missing[0]}')")
        keep &= have
        extra = sorted(have - set(u2s))
        if extra:
            notes.append(f"{len(extra)} line(s) of {name} for utterances not in utt2spk (first: '{extra[0]}')")

    if layout.segmented:
        seg = tables["segments"]
        recs = set(tables.get("wav.scp", {})) if "wav.scp" in tables else None
        bad_time, no_rec = [], []
        for utt in sorted(keep):
            rec, start, end = parse_segment(seg[utt], (d / "segments", lines["segments"][utt]),
                                            check_times=False)
            if segment_time_error(start, end):
                bad_time.append(utt)
            elif recs is not None and rec not in recs:
                no_rec.append(utt)
        if bad_time:
            notes.append(f"{len(bad_time)} segment(s) with start >= end or a negative start (first: '{bad_time[0]}')")
        if no_rec:
            notes.append(f"{len(no_rec)} segment(s) whose recording is not in wav.scp (first: '{no_rec[0]}')")
        keep -= set(bad_time) | set(no_rec)

    if not keep:
        raise DataError(d / "utt2spk", None, "no utterance would be left (" + "; ".join(notes or ["empty"])
                        + "); nothing was changed")
    _write_subset(tables, layout, d, keep)
    return len(keep), total


# ------------------------------------------------------------------------------------------ strict load

def _load_consistent(d: Path):
    """Read a data dir that must already be consistent (as validate_data_dir checks)."""
    if not (d / "utt2spk").is_file():
        raise DataError(d / "utt2spk", None, "file does not exist; a data dir needs utt2spk")
    layout = _Layout(d)
    tables = {n: read_table(d / n) for n in layout.present if n != "spk2utt"}
    utts = set(tables["utt2spk"])
    hint = "; run utils/fix_data_dir.sh"
    for name in layout.utt:
        keys = set(tables[name])
        if keys == utts:
            continue
        extra = sorted(keys - utts)
        if extra:
            raise DataError(d / name, table_line_numbers(d / name)[extra[0]],
                            f"utterance '{extra[0]}' is not in utt2spk{hint}")
        missing = sorted(utts - keys)
        raise DataError(d / name, None, f"utterance '{missing[0]}' (in utt2spk) is missing here{hint}")
    if layout.segmented and "wav.scp" in tables:
        seg_lines = None
        for utt, value in tables["segments"].items():
            rec = value.split()[0]
            if rec not in tables["wav.scp"]:
                seg_lines = seg_lines or table_line_numbers(d / "segments")
                raise DataError(d / "segments", seg_lines[utt], f"recording '{rec}' is not in wav.scp{hint}")
    return tables, layout


def _read_list(items, what: str):
    """A list given as names or as a file (first field of each non-blank line): [(name, (file, line))]."""
    if isinstance(items, (str, os.PathLike)):
        p = Path(items)
        try:
            raw = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(p, None, f"{what} list does not exist") from None
        except UnicodeDecodeError as e:
            raise DataError(p, None, f"not valid UTF-8 (byte {e.start})") from None
        return [(ln.split()[0], (p, i)) for i, ln in enumerate(raw.splitlines(), 1) if ln.strip()]
    return [(str(x), None) for x in items]


# ------------------------------------------------------------------------------------------ subset

def subset_data_dir(src, dst, *, first: int | None = None, random_n: int | None = None, seed: int = 0,
                    speakers=None, utt_list=None, notes: list | None = None) -> int:
    """Write ``dst``: a copy of data dir ``src`` restricted to some utterances; return how many.

    Exactly one selector: ``first`` (the first N utterances in C order), ``random_n`` (N utterances
    drawn with ``seed``), ``speakers`` (every utterance of these speakers) or ``utt_list`` (these
    utterances). ``speakers`` and ``utt_list`` are lists of names or the path of a file with one per line
    (first field, as Kaldi's). As in Kaldi, names that are not in ``src`` are ignored (counted in
    ``notes`` when a list is given), but a subset with no utterance is an error. All tables stay
    consistent: spk2utt is regenerated, speaker tables keep the remaining speakers, and with
    ``segments`` wav.scp keeps only the recordings those segments use.
    """
    src, dst = Path(src), Path(dst)
    chosen = [x is not None for x in (first, random_n, speakers, utt_list)]
    if sum(chosen) != 1:
        raise ValueError("subset_data_dir: give exactly one of first, random_n, speakers, utt_list")
    if dst.resolve() == src.resolve():
        raise DataError(dst, None, "the destination is the source data dir; give a new directory")
    tables, layout = _load_consistent(src)
    all_utts = sorted(tables["utt2spk"])
    notes = notes if notes is not None else []
    if first is not None or random_n is not None:
        n = first if first is not None else random_n
        if n < 1:
            raise DataError(src / "utt2spk", None, f"cannot take {n} utterances; give a positive number")
        if n > len(all_utts):
            raise DataError(src / "utt2spk", None, f"cannot take {n} utterances: this data dir has only "
                            f"{len(all_utts)}")
        utts = all_utts[:n] if first is not None else random.Random(seed).sample(all_utts, n)
    else:
        spk_mode = speakers is not None
        wanted = _read_list(speakers if spk_mode else utt_list, "speaker" if spk_mode else "utterance")
        known = set(tables["utt2spk"].values()) if spk_mode else set(all_utts)
        names = {name for name, _ in wanted}
        unknown = sorted(names - known)
        if unknown:
            notes.append(f"{len(unknown)} listed {'speaker' if spk_mode else 'utterance'}(s) not in {src} "
                         f"(first: '{unknown[0]}')")
        if spk_mode:
            utts = [u for u in all_utts if tables["utt2spk"][u] in names]
        else:
            utts = [u for u in all_utts if u in names]
        if not utts:
            where = wanted[0][1] if wanted and wanted[0][1] else (src / "utt2spk", None)
            raise DataError(where[0], None, f"no {'speaker' if spk_mode else 'utterance'} of the list is in "
                            f"{src}; the subset would be empty")
    _write_subset(tables, layout, dst, utts)
    return len(utts)


# ------------------------------------------------------------------------------------------ split

def split_dir_name(data_dir, nj: int, by: str = "speaker") -> Path:
    """Kaldi's layout: ``split{nj}`` (by speaker) or ``split{nj}utt`` (``--per-utt``)."""
    return Path(data_dir) / f"split{nj}{'utt' if by == 'utterance' else ''}"


def _split_is_current(d: Path, nj: int, by: str) -> bool:
    layout = _Layout(d)
    root = split_dir_name(d, nj, by)
    newest_src = max((d / n).stat().st_mtime_ns for n in layout.present)
    expected = set(layout.present) | {"spk2utt"}
    for j in range(1, nj + 1):
        job = root / str(j)
        have = {n for n in ALL_TABLES if (job / n).is_file()}
        if have != expected:
            return False
        if min((job / n).stat().st_mtime_ns for n in have) <= newest_src:
            return False
    return True


def split_is_up_to_date(data_dir, nj: int, by: str = "speaker") -> bool:
    """True when ``split_dir_name(data_dir, nj, by)`` holds every job and is newer than every source table."""
    d = Path(data_dir)
    if not (d / "utt2spk").is_file():
        return False
    return _split_is_current(d, nj, by)


def _balanced_speaker_jobs(spk2utt: dict, nj: int) -> list[list[str]]:
    """Largest speaker first, to the job with the fewest utterances so far (ties: lower job number)."""
    jobs: list[list[str]] = [[] for _ in range(nj)]
    load = [0] * nj
    for spk in sorted(spk2utt, key=lambda s: (-len(spk2utt[s]), s)):
        j = min(range(nj), key=lambda i: (load[i], i))
        jobs[j].extend(spk2utt[spk])
        load[j] += len(spk2utt[spk])
    return jobs


def split_data(data_dir, nj: int, by: str = "speaker") -> list[Path]:
    """Split a data dir into ``nj`` parts ``data_dir/split{nj}/{1..nj}/`` (Kaldi's utils/split_data.sh).

    ``by='speaker'`` keeps every speaker's utterances in one job and balances the number of
    utterances per job (largest speakers first); ``by='utterance'`` (Kaldi's ``--per-utt``, written
    to ``split{nj}utt/``) cuts the sorted utterances into ``nj`` contiguous runs whose sizes differ by
    at most one. Each part is a complete, consistent data dir. Nothing is rewritten when the split dir
    is newer than every source table. Returns the job dirs in order.
    """
    if by not in ("speaker", "utterance"):
        raise ValueError(f"split_data: by must be 'speaker' or 'utterance', not {by!r}")
    d = Path(data_dir)
    root = split_dir_name(d, nj, by)
    job_dirs = [root / str(j) for j in range(1, nj + 1)]
    tables, layout = _load_consistent(d)
    u2s = tables["utt2spk"]
    if nj < 1:
        raise DataError(d / "utt2spk", None, f"cannot split into {nj} jobs; give a positive number")
    if by == "speaker":
        spk2utt = spk2utt_from_utt2spk(u2s)
        if nj > len(spk2utt):
            raise DataError(d / "utt2spk", None, f"cannot split {len(spk2utt)} speakers into {nj} jobs without "
                            "splitting a speaker; use fewer jobs or split by utterance (--per-utt)")
    elif nj > len(u2s):
        raise DataError(d / "utt2spk", None, f"cannot split {len(u2s)} utterances into {nj} jobs; use fewer jobs")
    if _split_is_current(d, nj, by):
        return job_dirs
    if by == "speaker":
        jobs = _balanced_speaker_jobs(spk2utt, nj)
    else:
        utts = sorted(u2s)
        q, r = divmod(len(utts), nj)
        jobs, start = [], 0
        for j in range(nj):
            size = q + (1 if j < r else 0)
            jobs.append(utts[start:start + size])
            start += size
    for job_dir, utts in zip(job_dirs, jobs):
        _write_subset(tables, layout, job_dir, utts)
    return job_dirs
