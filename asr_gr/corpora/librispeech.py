"""Kaldi data dirs for LibriSpeech (Panayotov et al., ICASSP 2015; openslr.org/12), the paper's corpus.

An extracted copy is laid out as::

    <root>/LibriSpeech/SPEAKERS.TXT        ';' comments, then "ID | SEX | SUBSET | MINUTES | NAME"
    <root>/LibriSpeech/<part>/<reader>/<chapter>/<reader>-<chapter>.trans.txt   lines "UTTID WORDS"
    <root>/LibriSpeech/<part>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac

Two speakers per utterance, kept explicit (see ``asr_gr.data.kaldi_dir.speaker_labels``):

* Kaldi's ``utt2spk`` speaker is the *reader-chapter* (``103-1240``), as in Kaldi's and ESPnet's
  LibriSpeech recipes (per-chapter CMVN speaker); ``spk2gender`` is keyed by it;
* the speaker classifier's label is the *reader* (``103``), written to ``utt2spkid``.

Utterance ids are the corpus's own (``103-1240-0000``), already prefixed by the reader-chapter speaker.
Data dir names use underscores (``train-clean-100`` -> ``train_clean_100``). The dev and test readers
never occur in training, so :func:`prepare_librispeech` also holds out ``heldout_per_reader``
utterances of every reader of the transcribed training parts into ``train_heldout`` (removed from
those parts): the aux head's speaker accuracy is measured on seen readers there. A training part can
be prepared *untranscribed* (no ``text``; utt2spk and utt2spkid kept) for semi-supervised training:
its utterances are then the FLAC files of its chapter dirs, and its ``trans.txt`` files are never
opened (they may be absent). A reader found in another part than its SPEAKERS.TXT subset is warned
about: LibriSpeech's parts have disjoint readers, which the unseen-speaker measurements rely on.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

from asr_gr.data.kaldi_dir import write_data_dir
from asr_gr.utils import DataError, text_lines

URL_BASE = "https://www.openslr.org/resources/12"
# part -> (hours of speech, size of the .tar.gz in GB), from openslr.org/12 and the corpus paper.
PARTS = {
    "train-clean-100": (100.6, 6.3),
    "train-clean-360": (363.6, 23.0),
    "train-other-500": (496.7, 30.0),
    "dev-clean": (5.4, 0.34),
    "dev-other": (5.3, 0.31),
    "test-clean": (5.4, 0.35),
    "test-other": (5.1, 0.33),
}
TRAIN_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")

_UTT_RE = re.compile(r"^(?P<reader>\d+)-(?P<chapter>\d+)-(?P<idx>\d+)$")


@dataclass(frozen=True)
class Utterance:
    utt: str       # 103-1240-0000
    reader: str    # 103: the classifier's speaker (utt2spkid)
    chapter: str   # 1240
    words: str     # "" in an untranscribed part
    audio: Path
    source: Path   # what names it, for error messages: its trans.txt (at ``line``), or its FLAC file
    line: int | None

    @property
    def spk(self) -> str:
        """Kaldi's (CMVN) speaker: reader-chapter."""
        return f"{self.reader}-{self.chapter}"


@dataclass(frozen=True)
class Reader:
    reader: str
    gender: str   # m | f
    subset: str
    minutes: float
    name: str
    line: int     # of SPEAKERS.TXT


def part_name(part: str) -> str:
    """Normalise ``train_clean_100`` / ``train-clean-100`` to the corpus spelling ``train-clean-100``."""
    p = part.strip().replace("_", "-")
    if p not in PARTS:
        raise ValueError(f"unknown LibriSpeech part '{part}'; known: {', '.join(PARTS)}")
    return p


def data_name(part: str) -> str:
    """``train-clean-100`` -> ``train_clean_100`` (the data dir's name)."""
    return part_name(part).replace("-", "_")


def resolve_root(root) -> Path:
    """The ``LibriSpeech`` directory (with SPEAKERS.TXT): ``root/LibriSpeech`` or ``root`` itself."""
    root = Path(root)
    for cand in (root / "LibriSpeech", root):
        if (cand / "SPEAKERS.TXT").is_file():
            return cand.resolve()
    raise DataError(root, None, "not a LibriSpeech copy: expected LibriSpeech/SPEAKERS.TXT in it (or "
                    f"SPEAKERS.TXT directly); download the parts from {URL_BASE}/ and extract them here")


def read_speakers(path) -> dict[str, Reader]:
    """Parse SPEAKERS.TXT: ';' comment lines, then ``ID | SEX | SUBSET | MINUTES | NAME``.

    The name is everything after the fourth '|' (a few names contain '|', e.g. reader 60's).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "does not exist")
    out: dict[str, Reader] = {}
    first: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        s = line.strip()
        if not s or s.startswith(";"):
            continue
        fields = [f.strip() for f in s.split("|", 4)]
        if len(fields) != 5:
            raise DataError(path, lineno, f"expected 'ID | SEX | SUBSET | MINUTES | NAME', got '{s}'")
        rid, sex, subset, minutes, name = fields
        if not rid.isdigit():
            raise DataError(path, lineno, f"reader id must be a number, got '{rid}'")
        if sex.upper() not in ("M", "F"):
            raise DataError(path, lineno, f"SEX of reader {rid} must be M or F, got '{sex}'")
        try:
            mins = float(minutes)
        except ValueError:
            raise DataError(path, lineno, f"MINUTES of reader {rid} must be a number, got '{minutes}'") from None
        if rid in first:
            raise DataError(path, lineno, f"reader {rid} is listed twice (first on line {first[rid]})")
        first[rid] = lineno
        out[rid] = Reader(rid, sex.lower(), subset, mins, name, lineno)
    if not out:
        raise DataError(path, None, "no reader lines")
    return out


def read_part(part_dir, *, transcribed: bool = True) -> list[Utterance]:
    """Every utterance of one extracted part: from its ``<reader>/<chapter>/*.trans.txt`` files, or
    (``transcribed=False``) from the ``<reader>-<chapter>-<n>.flac`` files of each chapter dir, without
    opening any trans.txt."""
    part_dir = Path(part_dir)
    if not part_dir.is_dir():
        raise DataError(part_dir, None, "part directory does not exist (extract <part>.tar.gz from "
                        f"{URL_BASE}/ here, or drop the part from --parts)")
    utts: list[Utterance] = []
    seen: dict[str, tuple[Path, int]] = {}
    for reader_dir in sorted(p for p in part_dir.iterdir() if p.is_dir()):
        for chapter_dir in sorted(p for p in reader_dir.iterdir() if p.is_dir()):
            reader, chapter = reader_dir.name, chapter_dir.name
            if not transcribed:
                utts.extend(_list_flacs(chapter_dir, reader, chapter))
                continue
            trans = chapter_dir / f"{reader}-{chapter}.trans.txt"
            if not trans.is_file():
                raise DataError(trans, None, f"transcript of chapter {reader}/{chapter} is missing")
            utts.extend(_read_trans(trans, reader, chapter, seen))
    if not utts:
        what = "*.trans.txt" if transcribed else "*.flac"
        raise DataError(part_dir, None, f"no utterances (expected <reader>/<chapter>/{what} below it)")
    return utts


def _list_flacs(chapter_dir: Path, reader: str, chapter: str) -> list[Utterance]:
    out = []
    for audio in sorted(chapter_dir.glob("*.flac")):
        utt = audio.name[:-len(".flac")]
        m = _UTT_RE.match(utt)
        if not m or m.group("reader") != reader or m.group("chapter") != chapter:
            raise DataError(audio, None, f"file name is not of the form {reader}-{chapter}-<number>.flac "
                            "(the chapter dir it is in)")
        out.append(Utterance(utt, reader, chapter, "", audio.resolve(), audio, None))
    if not out:
        raise DataError(chapter_dir, None, f"no audio: expected {reader}-{chapter}-<number>.flac files in it")
    return out


def _read_trans(trans: Path, reader: str, chapter: str, seen: dict) -> list[Utterance]:
    out = []
    for lineno, line in text_lines(trans):
        parts = line.split(maxsplit=1)
        utt = parts[0]
        words = " ".join(parts[1].split()) if len(parts) > 1 else ""
        m = _UTT_RE.match(utt)
        if not m or m.group("reader") != reader or m.group("chapter") != chapter:
            raise DataError(trans, lineno, f"utterance id '{utt}' is not of the form "
                            f"{reader}-{chapter}-<number> (the chapter this file belongs to)")
        if not words:
            raise DataError(trans, lineno, f"utterance '{utt}' has an empty transcript")
        if utt in seen:
            f, ln = seen[utt]
            raise DataError(trans, lineno, f"duplicate utterance '{utt}' (first in {f}:{ln})")
        seen[utt] = (trans, lineno)
        audio = trans.parent / f"{utt}.flac"
        if not audio.is_file():
            raise DataError(trans, lineno, f"no audio for utterance '{utt}': {audio} does not exist")
        out.append(Utterance(utt, reader, chapter, words, audio.resolve(), trans, lineno))
    return out


def split_heldout(utts: list[Utterance], per_reader: int, seed: int = 1):
    """(train, heldout): ``per_reader`` utterances of every reader go to heldout, chosen with a
    per-reader seed (the choice for a reader does not depend on which other readers are present);
    a reader always keeps at least one training utterance."""
    by_reader: dict[str, list[Utterance]] = {}
    for u in utts:
        by_reader.setdefault(u.reader, []).append(u)
    held: set[str] = set()
    for reader, rutts in by_reader.items():
        n = min(per_reader, len(rutts) - 1)
        if n <= 0:
            continue
        rng = random.Random(f"{seed}:{reader}")
        held.update(u.utt for u in rng.sample(sorted(rutts, key=lambda u: u.utt), n))
    return [u for u in utts if u.utt not in held], [u for u in utts if u.utt in held]


def _durations(utts: list[Utterance]) -> dict[str, float]:
    import soundfile as sf

    out = {}
    for u in utts:
        try:
            out[u.utt] = float(sf.info(str(u.audio)).duration)
        except Exception as e:  # soundfile raises several types
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(u.source, u.line, f"cannot read audio '{u.audio}' of '{u.utt}': {reason}") from None
    return out


def _write(data_dir: Path, utts: list[Utterance], speakers: dict[str, Reader], *, transcribed: bool,
           durations: bool) -> dict:
    spk2gender = {u.spk: speakers[u.reader].gender for u in utts}
    durs = _durations(utts) if durations else None
    write_data_dir(
        data_dir,
        wav_scp={u.utt: str(u.audio) for u in utts},
        utt2spk={u.utt: u.spk for u in utts},
        utt2spkid={u.utt: u.reader for u in utts},
        text={u.utt: u.words for u in utts} if transcribed else None,
        spk2gender=spk2gender,
        utt2dur=durs)
    # files of an earlier preparation of the same set that this one does not write
    for name, stale in (("text", not transcribed), ("utt2dur", not durations)):
        if stale and (data_dir / name).exists():
            (data_dir / name).unlink()
    return {"readers": len({u.reader for u in utts}), "speakers": len(spk2gender),
            "utterances": len(utts), "hours": sum(durs.values()) / 3600 if durs else None,
            "transcribed": transcribed}


def _warn_other_subset(part: str, utts: list[Utterance], speakers: dict[str, Reader], speakers_txt: Path):
    """Warn when readers of ``part`` are listed under another subset in SPEAKERS.TXT (a reorganised
    or mixed-up copy: a dev/test reader may then also be a training reader)."""
    readers = sorted({u.reader for u in utts}, key=int)
    other = [speakers[r] for r in readers if speakers[r].subset != part]
    if other:
        shown = ", ".join(f"{r.reader} (line {r.line}: {r.subset})" for r in other[:3])
        logging.warning("LibriSpeech %s: %d of its %d readers are listed under another subset in %s: %s%s; "
                        "LibriSpeech's parts have disjoint readers, this copy's may not", part, len(other),
                        len(readers), speakers_txt, shown, ", ..." if len(other) > 3 else "")


def prepare_librispeech(root, data_dir, parts=("train-clean-100", "dev-clean", "dev-other",
                                                "test-clean", "test-other"), *,
                        untranscribed=(), heldout_per_reader: int = 2, heldout_set: str = "train_heldout",
                        seed: int = 1, durations: bool = True) -> dict[str, dict]:
    """Write ``data_dir/<part with underscores>`` for every part, plus ``heldout_set``.

    ``untranscribed``: training parts written without ``text`` (they are prepared even if not in
    ``parts``) and left out of the held-out split. ``heldout_per_reader`` utterances of every reader
    of each *transcribed* training part move to ``heldout_set`` (0: no held-out set).
    Returns per-set counts. Raises DataError naming file:line for every problem in the copy.
    """
    ls = resolve_root(root)
    data_dir = Path(data_dir)
    speakers_txt = ls / "SPEAKERS.TXT"
    speakers = read_speakers(speakers_txt)
    untr = [part_name(p) for p in untranscribed]
    for p in untr:
        if p not in TRAIN_PARTS:
            raise ValueError(f"only training parts can be untranscribed, not '{p}'")
    todo = list(dict.fromkeys([part_name(p) for p in parts] + untr))
    parsed: dict[str, list[Utterance]] = {}
    for part in todo:
        utts = read_part(ls / part, transcribed=part not in untr)
        for u in utts:
            if u.reader not in speakers:
                raise DataError(u.source, u.line, f"reader {u.reader} of utterance '{u.utt}' is not in "
                                f"{speakers_txt}")
        _warn_other_subset(part, utts, speakers, speakers_txt)
        parsed[part] = utts

    summary: dict[str, dict] = {}
    heldout: list[Utterance] = []
    for part, utts in parsed.items():
        transcribed = part not in untr
        if transcribed and part in TRAIN_PARTS and heldout_per_reader > 0:
            utts, held = split_heldout(utts, heldout_per_reader, seed)
            heldout.extend(held)
        name = data_name(part)
        summary[name] = _write(data_dir / name, utts, speakers, transcribed=transcribed, durations=durations)
        logging.info("LibriSpeech %s -> %s: %d utterances%s", part, data_dir / name, len(utts),
                     "" if transcribed else " (untranscribed)")
    if heldout:
        summary[heldout_set] = _write(data_dir / heldout_set, heldout, speakers, transcribed=True,
                                      durations=durations)
    elif heldout_per_reader > 0:
        logging.warning("LibriSpeech: no transcribed training part among %s; no %s", todo, heldout_set)
    return summary
