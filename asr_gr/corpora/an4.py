"""Kaldi data dirs for the CMU AN4 corpus (alphanumeric census data, 16 kHz, ~50 min train, ~6 min test).

The AN4 distribution (``an4_sphere.tar.gz``) is laid out as::

    an4/etc/an4_train.transcription     lines "<s> WORDS </s> (an251-fash-b)"
    an4/etc/an4_test.transcription
    an4/wav/an4_clstk/<spk>/<utt>.sph       (train; .wav in some copies)
    an4/wav/an4test_clstk/<spk>/<utt>.sph   (test)

The speaker is the middle field of the utterance id (``an251-fash-b`` -> ``fash``); its first letter is
the gender (``f``/``m``). Kaldi utterance ids put the speaker first (``fash-an251-b``) so that sorting
utt2spk by utterance also sorts it by speaker.

Sets written by :func:`prepare_an4`:

* ``train``          the training speakers minus the dev speakers, minus ``train_heldout``;
* ``train_heldout``  one utterance of every ``train`` speaker that has at least two (speakers seen in
  training: the aux head's speaker accuracy is measured on it);
* ``dev``            every utterance of a few whole training speakers (``dev_fraction`` of them, at least
  one), so that dev speakers are unseen, like the test speakers (AN4 has no dev set);
* ``test``           the AN4 test set.
"""

from __future__ import annotations

import logging
import random
import re
import shlex
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from asr_gr.data.kaldi_dir import write_data_dir
from asr_gr.utils import DataError, text_lines

URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"

# "<s> WORDS </s> (utt-id)"; the sentence markers are optional in some copies, the id is not.
_LINE_RE = re.compile(r"^\s*(?:<s>)?(?P<words>.*?)(?:</s>)?\s*\((?P<utt>[^()\s]+)\)\s*$")
_UTT_RE = re.compile(r"^(?P<pre>[^-\s]+)-(?P<spk>[^-\s]+)-(?P<post>[^-\s]+)$")

SETS = {"train": ("an4_train.transcription", "an4_clstk"),
        "test": ("an4_test.transcription", "an4test_clstk")}


@dataclass(frozen=True)
class Utterance:
    utt: str          # Kaldi id, speaker first: fash-an251-b
    an4_id: str       # the corpus's id: an251-fash-b
    spk: str
    words: str
    audio: Path


def resolve_root(root) -> Path:
    """The directory holding ``etc/`` and ``wav/``: ``root`` itself or ``root/an4``."""
    root = Path(root)
    for cand in (root, root / "an4"):
        if (cand / "etc").is_dir() and (cand / "wav").is_dir():
            return cand.resolve()
    raise DataError(root, None, "not an AN4 copy: expected etc/ and wav/ in it or in its an4/ "
                    "(download http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz)")


def speaker_of(an4_id: str) -> str:
    """``an251-fash-b`` -> ``fash``; raises ValueError for an id without three '-'-separated fields."""
    m = _UTT_RE.match(an4_id)
    if not m:
        raise ValueError(f"utterance id '{an4_id}' is not of the form <prefix>-<speaker>-<suffix>")
    return m.group("spk")


def kaldi_utt_id(an4_id: str) -> str:
    """``an251-fash-b`` -> ``fash-an251-b`` (speaker first, Kaldi's convention)."""
    m = _UTT_RE.match(an4_id)
    if not m:
        raise ValueError(f"utterance id '{an4_id}' is not of the form <prefix>-<speaker>-<suffix>")
    return f"{m.group('spk')}-{m.group('pre')}-{m.group('post')}"


def gender_of(spk: str) -> str | None:
    g = spk[:1].lower()
    return g if g in ("f", "m") else None


def read_transcription(trans: Path, wav_dir: Path) -> list[Utterance]:
    """Parse one AN4 transcription file; every line must name an existing WAV/SPH under ``wav_dir``."""
    if not trans.is_file():
        raise DataError(trans, None, "transcription file does not exist")
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    for lineno, line in text_lines(trans):
        m = _LINE_RE.match(line)
        if not m:
            raise DataError(trans, lineno, f"expected '<s> WORDS </s> (utt-id)', got '{line.strip()}'")
        an4_id = m.group("utt")
        try:
            spk = speaker_of(an4_id)
            utt = kaldi_utt_id(an4_id)
        except ValueError as e:
            raise DataError(trans, lineno, str(e)) from None
        words = " ".join(w for w in m.group("words").split() if w not in ("<s>", "</s>")).upper()
        if not words:
            raise DataError(trans, lineno, f"utterance '{an4_id}' has an empty transcript")
        if an4_id in seen:
            raise DataError(trans, lineno, f"duplicate utterance '{an4_id}' (first on line {seen[an4_id]})")
        seen[an4_id] = lineno
        audio = None
        for ext in (".wav", ".sph", ".WAV", ".SPH"):
            p = wav_dir / spk / f"{an4_id}{ext}"
            if p.is_file():
                audio = p.resolve()
                break
        if audio is None:
            raise DataError(trans, lineno, f"no audio for utterance '{an4_id}': "
                            f"{wav_dir / spk / an4_id}.wav (or .sph) does not exist")
        utts.append(Utterance(utt, an4_id, spk, words, audio))
    if not utts:
        raise DataError(trans, None, "no utterances in the transcription file")
    return utts


def sphere_duration(path: Path) -> float | None:
    """Duration from a NIST SPHERE header (sample_count / sample_rate), or None if it lacks them."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A"):
        return None
    fields = {}
    for line in head.decode("ascii", "replace").splitlines()[2:]:
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("-i"):
            fields[parts[0]] = int(parts[2])
        if line.strip() == "end_head":
            break
    if fields.get("sample_count") and fields.get("sample_rate"):
        return fields["sample_count"] / fields["sample_rate"]
    return None


class AudioEntries:
    """wav.scp entries and durations; SPHERE via ``sph2pipe`` when it is on PATH, else libsndfile."""

    def __init__(self, sph2pipe: str | None = None):
        self.sph2pipe = sph2pipe if sph2pipe is not None else shutil.which("sph2pipe")

    def entry(self, utt: Utterance) -> str:
        if utt.audio.suffix.lower() == ".sph" and self.sph2pipe:
            return f"{shlex.quote(self.sph2pipe)} -f wav {shlex.quote(str(utt.audio))} |"
        return str(utt.audio)

    def duration(self, utt: Utterance, where) -> float:
        import soundfile as sf

        sph = utt.audio.suffix.lower() == ".sph"
        if sph and self.sph2pipe:
            dur = sphere_duration(utt.audio)
            if dur is not None:
                return dur
        try:
            return float(sf.info(str(utt.audio)).duration)
        except Exception as e:  # soundfile raises several types
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            hint = (" (a SPHERE file libsndfile cannot read, e.g. shorten-compressed: install sph2pipe, "
                    "e.g. from Kaldi's tools/, and put it on PATH)") if sph else ""
            raise DataError(where[0], where[1], f"cannot read audio '{utt.audio}' of '{utt.an4_id}': "
                            f"{reason}{hint}") from None


def _line_numbers(trans: Path) -> dict[str, int]:
    out = {}
    for lineno, line in enumerate(trans.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = _LINE_RE.match(line)
        if m:
            out.setdefault(m.group("utt"), lineno)
    return out


def split_speakers(speakers, dev_fraction: float, seed: int) -> list[str]:
    """Whole training speakers for dev: ``round(dev_fraction * n)``, at least 1, never all of them."""
    speakers = sorted(speakers)
    if len(speakers) < 2 or dev_fraction <= 0:
        return []
    n = min(len(speakers) - 1, max(1, round(dev_fraction * len(speakers))))
    return sorted(random.Random(seed).sample(speakers, n))


def prepare_an4(an4_root, data_dir, *, dev_fraction: float = 0.1, seed: int = 1,
                sph2pipe: str | None = None) -> dict[str, dict]:
    """Write ``data_dir``/{train,train_heldout,dev,test}; return per-set speakers/utterances/minutes."""
    root = resolve_root(an4_root)
    data_dir = Path(data_dir)
    audio = AudioEntries(sph2pipe)
    parsed: dict[str, list[Utterance]] = {}
    where_of: dict[str, tuple] = {}
    for name, (trans_name, wav_name) in SETS.items():
        trans = root / "etc" / trans_name
        parsed[name] = read_transcription(trans, root / "wav" / wav_name)
        lines = _line_numbers(trans)
        for u in parsed[name]:
            where_of[u.utt] = (trans, lines.get(u.an4_id))

    train_spks = sorted({u.spk for u in parsed["train"]})
    test_spks = {u.spk for u in parsed["test"]}
    if test_spks & set(train_spks):
        logging.warning("AN4: speakers in both train and test: %s", " ".join(sorted(test_spks & set(train_spks))))
    dev_spks = set(split_speakers(train_spks, dev_fraction, seed))

    sets: dict[str, list[Utterance]] = {"train": [], "train_heldout": [], "dev": [], "test": parsed["test"]}
    by_spk: "OrderedDict[str, list[Utterance]]" = OrderedDict()
    for u in sorted(parsed["train"], key=lambda u: u.utt):
        if u.spk in dev_spks:
            sets["dev"].append(u)
        else:
            by_spk.setdefault(u.spk, []).append(u)
    rng = random.Random(seed)
    for spk, utts in by_spk.items():
        if len(utts) >= 2:
            held = rng.randrange(len(utts))
            sets["train_heldout"].append(utts[held])
            utts = utts[:held] + utts[held + 1:]
        sets["train"].extend(utts)

    summary = {}
    for name, utts in sets.items():
        if not utts:
            logging.warning("AN4: set '%s' is empty; not writing data/%s", name, name)
            continue
        durs = {u.utt: audio.duration(u, where_of[u.utt]) for u in utts}
        spks = {u.spk for u in utts}
        genders = {s: gender_of(s) for s in spks}
        if not all(genders.values()):  # Kaldi wants spk2gender complete or absent
            logging.warning("AN4: speaker ids not starting with f/m in %s; no spk2gender", name)
        write_data_dir(
            data_dir / name,
            wav_scp={u.utt: audio.entry(u) for u in utts},
            utt2spk={u.utt: u.spk for u in utts},
            text={u.utt: u.words for u in utts},
            spk2gender=genders if all(genders.values()) else None,
            utt2dur=durs)
        summary[name] = {"speakers": len(spks), "utterances": len(utts), "minutes": sum(durs.values()) / 60}
    return summary
