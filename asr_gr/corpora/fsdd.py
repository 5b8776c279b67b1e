"""Kaldi data dirs for FSDD, the free spoken digit dataset (real speech, 8 kHz, isolated digits).

An FSDD copy (the public repository ``Jakobovski/free-spoken-digit-dataset``, release v1.0.10: 6 male
speakers x 10 digits x 50 takes, about 22 minutes) is laid out as::

    recordings/<digit>_<speaker>_<take>.wav     8 kHz mono 16-bit WAV, e.g. 7_jackson_32.wav
    metadata.py                                 a dict: speaker -> gender, accent, language

The transcript of a recording is its digit as an English word (``SEVEN``). Kaldi utterance ids put
the speaker first (``jackson-7-32``), so that sorting utt2spk by utterance also sorts it by speaker.

Sets written by :func:`prepare_fsdd` (speakers and takes are options; these are the defaults):

* ``train``          the 4 training speakers (george, jackson, nicolas, yweweler), takes 5-49;
* ``train_heldout``  the same speakers' takes 0-4 (upstream's own test split: "recordings numbered
  0-4 are in the test set"): seen speakers, unseen recordings; the aux head's speaker accuracy;
* ``dev``            every take of one unseen speaker (lucas);
* ``test``           every take of another unseen speaker (theo);
* ``probe``          takes 0-4 of all 6 speakers, for the speaker probes of stage 6: 6 speakers is the
  fewest for which the probe's speaker bootstrap of the EER is defined (>= 5), which neither the
  2 unseen speakers nor the 4 training speakers alone give.
"""

from __future__ import annotations

import ast
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from asr_gr.data.kaldi_dir import write_data_dir
from asr_gr.utils import ConfigError, DataError

URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"

WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
TEST_SPEAKER = "theo"        # USA/neutral accent; jackson (USA/neutral too) stays in training
DEV_SPEAKER = "lucas"        # DEU/German accent; yweweler (DEU/German too) stays in training
HELDOUT_TAKES = range(0, 5)  # upstream's test split: takes 0-4
SETS = ("train", "train_heldout", "dev", "test", "probe")

# Upstream's metadata.py of v1.0.10 (used when the copy has no metadata.py): every speaker is male.
GENDERS = {"george": "m", "jackson": "m", "lucas": "m", "nicolas": "m", "theo": "m", "yweweler": "m"}

_NAME_RE = re.compile(r"^(?P<digit>[0-9]+)_(?P<spk>[A-Za-z0-9]+)_(?P<take>[0-9]+)\.wav$")
_METADATA_FILES = ("metadata.py", "metadata.upstream.py")


@dataclass(frozen=True)
class Recording:
    utt: str      # Kaldi id, speaker first: jackson-7-32
    spk: str
    digit: int
    take: int
    audio: Path

    @property
    def words(self) -> str:
        return WORDS[self.digit]


def resolve_root(root) -> Path:
    """The directory holding ``recordings/``: ``root`` itself, or the one ``free-spoken-digit-dataset-*``
    directory in it (what the release tarball unpacks to)."""
    root = Path(root)
    if (root / "recordings").is_dir():
        return root.resolve()
    cands = sorted(p for p in root.glob("free-spoken-digit-dataset*") if (p / "recordings").is_dir())
    if len(cands) == 1:
        return cands[0].resolve()
    raise DataError(root, None, "not an FSDD copy: expected recordings/ in it or in one "
                    f"free-spoken-digit-dataset-*/ directory in it (download {URL})")


def parse_name(path) -> Recording:
    """``recordings/7_jackson_32.wav`` -> Recording(utt='jackson-7-32', ...); a name not of the form
    ``<digit>_<speaker>_<take>.wav`` or with a digit outside 0-9 is a DataError naming the file."""
    path = Path(path)
    m = _NAME_RE.match(path.name)
    if not m:
        raise DataError(path, None, "file name is not of the form <digit>_<speaker>_<take>.wav "
                        "(e.g. 7_jackson_32.wav)")
    digit, take, spk = int(m.group("digit")), int(m.group("take")), m.group("spk")
    if digit >= len(WORDS):
        raise DataError(path, None, f"unknown digit '{m.group('digit')}' (FSDD has the digits 0-9)")
    return Recording(f"{spk}-{digit}-{take}", spk, digit, take, path.resolve())


def read_recordings(root) -> list[Recording]:
    """Every ``recordings/*.wav`` of an FSDD copy, sorted by utterance id; other files are ignored. Two
    files of the same speaker, digit and take (``7_jackson_5.wav``, ``7_jackson_05.wav``) are an error."""
    rec_dir = resolve_root(root) / "recordings"
    recs: dict[str, Recording] = {}
    for p in sorted(rec_dir.iterdir()):
        if p.suffix.lower() != ".wav" or not p.is_file():
            continue
        r = parse_name(p)
        if r.utt in recs:
            raise DataError(p, None, f"same speaker, digit and take as {recs[r.utt].audio.name} ('{r.utt}')")
        recs[r.utt] = r
    if not recs:
        raise DataError(rec_dir, None, "no <digit>_<speaker>_<take>.wav recordings in it")
    return sorted(recs.values(), key=lambda r: r.utt)


def read_genders(root) -> dict[str, str]:
    """speaker -> 'm'/'f' from the copy's ``metadata.py`` (a Python dict literal, read with
    ``ast.literal_eval``, never executed), or upstream v1.0.10's when the copy has none."""
    root = resolve_root(root)
    path = next((root / n for n in _METADATA_FILES if (root / n).is_file()), None)
    if path is None:
        return dict(GENDERS)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        raise DataError(path, e.lineno, f"not valid Python: {e.msg}") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "metadata"
                                                for t in node.targets):
            try:
                meta = ast.literal_eval(node.value)
            except ValueError:
                raise DataError(path, node.lineno, "'metadata' is not a dict literal") from None
            if not isinstance(meta, dict):
                raise DataError(path, node.lineno, "'metadata' is not a dict literal")
            out = {}
            for spk, info in meta.items():
                g = str(info.get("gender", "")).lower() if isinstance(info, dict) else ""
                if g in ("male", "female", "m", "f"):
                    out[str(spk)] = g[0]
            return out
    raise DataError(path, None, "no 'metadata = {...}' assignment in it")


def parse_takes(spec: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,10-12"`` -> [0, 2, 10, 11, 12]; ``""`` -> []."""
    out: set[int] = set()
    for part in spec.replace(",", " ").split():
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"--heldout-takes: '{part}' is not a take or a range a-b with a <= b (e.g. 0-4)")
        out.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(out)


def split_sets(recs: list[Recording], *, test_speaker: str = TEST_SPEAKER, dev_speaker: str = DEV_SPEAKER,
               heldout_takes=HELDOUT_TAKES, max_takes: int | None = None,
               where="recordings") -> dict[str, list[Recording]]:
    """The five sets of the module docstring. ``max_takes`` keeps only takes below it (a quick subset)."""
    if test_speaker == dev_speaker:
        raise ConfigError(f"--dev-speaker: must differ from --test-speaker (both '{test_speaker}')")
    if max_takes is not None:
        if max_takes < 1:
            raise ConfigError(f"--max-takes: must be at least 1, got {max_takes}")
        recs = [r for r in recs if r.take < max_takes]
    speakers = sorted({r.spk for r in recs})
    for opt, spk in (("--test-speaker", test_speaker), ("--dev-speaker", dev_speaker)):
        if spk not in speakers:
            raise DataError(where, None, f"{opt} '{spk}' has no recordings here (speakers: {' '.join(speakers)})")
    held = set(heldout_takes)
    sets: dict[str, list[Recording]] = {s: [] for s in SETS}
    for r in recs:
        if r.spk == test_speaker:
            sets["test"].append(r)
        elif r.spk == dev_speaker:
            sets["dev"].append(r)
        else:
            sets["train_heldout" if r.take in held else "train"].append(r)
        if r.take in held:
            sets["probe"].append(r)
    if not sets["train"]:
        raise DataError(where, None, "no training recordings left: every take of the training speakers "
                        f"({' '.join(s for s in speakers if s not in (test_speaker, dev_speaker)) or 'none'}) "
                        "is held out; give fewer --heldout-takes or more --max-takes")
    return sets


def _durations(recs: list[Recording]) -> dict[str, float]:
    import soundfile as sf

    out = {}
    for r in recs:
        try:
            out[r.utt] = float(sf.info(str(r.audio)).duration)
        except Exception as e:  # soundfile raises several types
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(r.audio, None, f"cannot read audio of '{r.utt}': {reason}") from None
    return out


def prepare_fsdd(fsdd_root, data_dir, *, test_speaker: str = TEST_SPEAKER, dev_speaker: str = DEV_SPEAKER,
                 heldout_takes=HELDOUT_TAKES, max_takes: int | None = None) -> dict[str, dict]:
    """Write ``data_dir``/{train,train_heldout,dev,test,probe}; return per-set speakers, utterances,
    minutes. Raises DataError naming the file for every problem in the copy."""
    root = resolve_root(fsdd_root)
    data_dir = Path(data_dir)
    recs = read_recordings(root)
    per_spk = Counter(r.spk for r in recs)
    if len(set(per_spk.values())) > 1:
        logging.info("FSDD: recordings per speaker differ: %s",
                     " ".join(f"{s}={n}" for s, n in sorted(per_spk.items())))
    sets = split_sets(recs, test_speaker=test_speaker, dev_speaker=dev_speaker, heldout_takes=heldout_takes,
                      max_takes=max_takes, where=root / "recordings")
    genders = read_genders(root)
    used = {r.utt for utts in sets.values() for r in utts}
    durs = _durations([r for r in recs if r.utt in used])
    summary = {}
    for name, utts in sets.items():
        if not utts:
            logging.warning("FSDD: set '%s' is empty; not writing %s", name, data_dir / name)
            continue
        spks = sorted({r.spk for r in utts})
        known = all(s in genders for s in spks)  # Kaldi wants spk2gender complete or absent
        if not known:
            logging.warning("FSDD: no gender in the metadata for %s; no spk2gender in %s",
                            " ".join(s for s in spks if s not in genders), data_dir / name)
        write_data_dir(
            data_dir / name,
            wav_scp={r.utt: str(r.audio) for r in utts},
            utt2spk={r.utt: r.spk for r in utts},
            text={r.utt: r.words for r in utts},
            spk2gender={s: genders[s] for s in spks} if known else None,
            utt2dur={r.utt: durs[r.utt] for r in utts})
        if not known and (data_dir / name / "spk2gender").exists():  # of an earlier preparation
            (data_dir / name / "spk2gender").unlink()
        summary[name] = {"speakers": len(spks), "utterances": len(utts),
                         "minutes": sum(durs[r.utt] for r in utts) / 60, "speaker_list": spks}
    return summary
