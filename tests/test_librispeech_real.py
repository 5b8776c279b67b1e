"""egs/librispeech/asr1 on a real LibriSpeech directory layout built from real LibriSpeech FLAC files.

The audio is real: the 60 train-clean-100 utterances of ../shared/data/librispeech_flac_sample (one
per reader, ``<reader>-<chapter>-0000.flac``, 16 kHz), copied byte for byte into a
``LibriSpeech/<part>/<reader>/<chapter>/`` tree; further utterances of a reader are cuts of its file
(written by libsndfile as FLAC). SPEAKERS.TXT is LibriSpeech's own: its header and the real rows of
these readers (sex, minutes, name), plus real rows of readers absent from the tree (train-other-500,
dev-other, reader 60's name ``|CBW|Simon``, a name cut at 50 characters). The transcripts of the
sample are not known: the trans.txt files hold made-up upper-case text in LibriSpeech's exact format.

What is checked: run.sh stages 1-2 (local/data_prep.sh, then fbank on the FLAC files with --nj 2);
speaker and gender maps from SPEAKERS.TXT; the untranscribed train-clean-360 set made from its FLAC
files without reading its trans.txt; the held-out split; errors on mistakes in a real layout.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
from conftest import copy_recipe

from asr_gr.corpora.librispeech import prepare_librispeech, read_speakers
from asr_gr.data.kaldi_dir import read_table
from asr_gr.utils import DataError

SAMPLE = "librispeech_flac_sample"

# LibriSpeech's SPEAKERS.TXT, its header verbatim; then rows as the real file has them, in its
# order (by reader id), with its padding.
SPEAKERS_HEADER = """\
; Some pipe(|) separated metadata about all LibriVox readers, whose work was used
; in the corpus.
;
; The meaning of the fields in left-to-right order is as follows:
;
; reader_id: the ID of the reader in the LibriVox's database
; gender: 'F' for female, 'M' for male
; subset: the corpus subset to which the reader's audio is assigned
; duration: total number of minutes of speech by the reader, included in the corpus
; name: the name under which the reader is registered in LibriVox
;
;ID  |SEX| SUBSET           |MINUTES| NAME
"""
# The real rows of the tree's readers (all train-clean-100 in the real file) and of a few readers the
# tree lacks, from a public copy of SPEAKERS.TXT (oscarknagg/raw-audio-gender-classification, which
# rewrote reader 60's name; the openslr file has "|CBW|Simon", as LibriSpeech parsers on GitHub note).
REAL_ROWS = """\
14   | F | train-clean-360  | 25.03 | Kristin LeMoine
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
20   | F | train-other-500  | 30.07 | Gesine
60   | M | train-clean-100  | 20.18 | |CBW|Simon
103  | F | train-clean-100  | 23.72 | Karen Savage
116  | M | dev-other        | 10.02 | Steven Collins
118  | M | train-clean-100  | 25.05 | Alex Buie
201  | M | train-clean-100  | 25.19 | Joplin James
211  | F | train-clean-100  | 25.22 | shanda_w
636  | F | train-clean-360  | 25.03 | Zale Schafer (Rose May Chamberlin Memorial Foundat
1034 | M | train-clean-100  | 16.71 | Kevin O'Coin
1081 | M | train-clean-100  | 25.18 | Fracture
1088 | F | train-clean-100  | 25.18 | Christabel
1089 | M | test-clean       | 8.05  | Peter Bobbe
1272 | M | dev-clean        | 8.02  | John Rose
1363 | F | train-clean-100  | 21.87 | Tammy Sanders
1447 | F | train-clean-100  | 25.18 | Luigina
1585 | F | dev-other        | 10.03 | Nelly ()
1624 | M | train-clean-100  | 22.03 | Daniel Shorten
1992 | F | train-clean-100  | 12.29 | Michelle White
"""

# part -> reader -> its real chapter in the sample. LibriSpeech's parts have disjoint readers, and
# so has this tree; readers are moved out of train-clean-100 into the other parts (SPEAKERS.TXT's
# SUBSET column says where this tree has them, see _speakers_txt).
TREE = {
    "train-clean-100": {"103": "1240", "1034": "121119", "1081": "125237", "1088": "129236", "1992": "141719"},
    "dev-clean": {"118": "121721", "1447": "130550"},
    "test-clean": {"19": "198", "1624": "142933"},
    "train-clean-360": {"201": "122255", "211": "122425", "1363": "135842"},
}
# Reader 103 read chapters 1240 and 1241 of the corpus; the sample has only 1240, so 103/1241/
# holds a cut of 103-1240-0000: two Kaldi speakers (reader-chapter), one reader.
EXTRA_CHAPTER = ("103", "1241")
SEX = {"103": "f", "1034": "m", "1081": "m", "1088": "f", "1992": "f", "118": "m", "1447": "f",
       "19": "f", "1624": "m", "201": "m", "211": "f", "1363": "f"}  # from the real rows above
WORDS = ("THE OLD MAN SAID THAT HE WOULD COME BACK TO THE HOUSE BEFORE NIGHT AND SHE WAS GLAD OF IT "
         "MISSUS LYNDE'S KITCHEN WINDOW LOOKED DOWN UPON THE ROAD").split()
MARKER = "ZEBRAQUOKKA"  # in train-clean-360's trans.txt only: it must never reach data/ or dump/


def _speakers_txt(rows: str = REAL_ROWS, placed: bool = True) -> str:
    """SPEAKERS.TXT; ``placed``: each tree reader's SUBSET column names the part this tree has it in."""
    where = {r: part for part, readers in TREE.items() for r in readers}
    out = []
    for line in rows.splitlines():
        rid = line.split("|", 1)[0].strip()
        if placed and rid in where:
            fields = line.split("|", 4)
            fields[2] = f" {where[rid]:<17}"
            line = "|".join(fields)
        out.append(line + "\n")
    return SPEAKERS_HEADER + "".join(out)


def _text(utt: str) -> str:
    """Made-up words (the sample's transcripts are unknown), a different slice per utterance."""
    k = sum(map(ord, utt))
    return " ".join(WORDS[(k + i) % len(WORDS)] for i in range(5 + k % 7))


def _cut(src: Path, dst: Path, start: float, stop: float):
    """Part [start, stop) of a real FLAC (fractions of its length) as a new FLAC, sample-exact."""
    x, sr = sf.read(str(src), dtype="int16")
    a, b = int(start * len(x)), int(stop * len(x))
    sf.write(str(dst), x[a:b], sr, format="FLAC", subtype="PCM_16")


def build_librispeech(top: Path, sample: Path, speakers: str | None = None) -> Path:
    """<top>/LibriSpeech/ as the openslr archives extract: the top-level .TXT files, SPEAKERS.TXT
    and <part>/<reader>/<chapter>/{<reader>-<chapter>-NNNN.flac, <reader>-<chapter>.trans.txt}.

    Transcribed parts: utterance 0000 is the sample's file (copied), 0001 and 0002 are cuts of it.
    train-clean-360: 0000 and a cut 0001; its trans.txt files are there but hold the MARKER word, a
    malformed line and a line naming a missing FLAC, and one chapter has none."""
    ls = top / "LibriSpeech"
    ls.mkdir(parents=True)
    (ls / "SPEAKERS.TXT").write_text(speakers if speakers is not None else _speakers_txt())
    for name in ("README.TXT", "LICENSE.TXT", "CHAPTERS.TXT", "BOOKS.TXT"):
        (ls / name).write_text(f"; {name} of this copy\n")
    for part, readers in TREE.items():
        for reader, chapter in readers.items():
            d = ls / part / reader / chapter
            d.mkdir(parents=True)
            src = sample / f"{reader}-{chapter}-0000.flac"
            shutil.copyfile(src, d / src.name)
            stem = f"{reader}-{chapter}"
            if part == "train-clean-360":
                _cut(src, d / f"{stem}-0001.flac", 0.25, 0.75)
                if reader == "1363":
                    continue  # no trans.txt at all
                bad = "" if reader == "201" else "THIS LINE IS NOT A TRANSCRIPT\n"
                (d / f"{stem}.trans.txt").write_text(
                    f"{stem}-0000 {MARKER} WORDS\n{stem}-0001 {MARKER}\n{bad}{stem}-0009 NO SUCH FLAC\n")
                continue
            _cut(src, d / f"{stem}-0001.flac", 0.0, 0.4)
            _cut(src, d / f"{stem}-0002.flac", 0.4, 1.0)
            utts = [f"{stem}-{i:04d}" for i in range(3)]
            (d / f"{stem}.trans.txt").write_text("".join(f"{u} {_text(u)}\n" for u in utts))
    reader, chapter = EXTRA_CHAPTER
    d = ls / "train-clean-100" / reader / chapter
    d.mkdir()
    _cut(sample / f"{reader}-{TREE['train-clean-100'][reader]}-0000.flac", d / f"{reader}-{chapter}-0000.flac",
         0.5, 1.0)
    utt = f"{reader}-{chapter}-0000"
    (d / f"{reader}-{chapter}.trans.txt").write_text(f"{utt} {_text(utt)}\n")
    return top


@pytest.fixture
def sample(shared_data):
    d = shared_data / SAMPLE
    if not d.is_dir():
        pytest.skip(f"{d} is absent")
    return d


def _flacs(ls: Path, part: str) -> dict[str, Path]:
    return {p.name[:-5]: p for p in sorted((ls / part).glob("*/*/*.flac"))}


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def _run(recipe: Path, *args):
    return subprocess.run(["./run.sh", *args], cwd=recipe, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True)


def test_run_sh_stages_1_2_on_real_layout(sample, tmp_path):
    corpus = build_librispeech(tmp_path / "corpus", sample)
    ls = corpus / "LibriSpeech"
    recipe = copy_recipe("librispeech", tmp_path / "repo")
    p = _run(recipe, "--librispeech-root", str(corpus), "--parts", "train-clean-100 dev-clean test-clean",
             "--untranscribed-set", "train_clean_360", "--test-sets", "dev_clean test_clean",
             "--stage", "1", "--stop-stage", "2", "--nj", "2")
    assert p.returncode == 0, p.stderr[-4000:]
    assert "another subset" not in p.stderr  # every reader is in the part SPEAKERS.TXT names
    data, dump = recipe / "data", recipe / "dump" / "fbank"
    sets = {"train_clean_100": "train-clean-100", "train_heldout": "train-clean-100", "dev_clean": "dev-clean",
            "test_clean": "test-clean", "train_clean_360": "train-clean-360"}
    assert {d.name for d in data.iterdir() if d.is_dir() and d.name != "token_list"} == set(sets)

    tables = {s: {f.name: read_table(f) for f in (data / s).iterdir() if f.is_file()} for s in sets}
    for s, t in tables.items():
        # Kaldi's validator, as a user runs it
        opts = ["--no-text"] if s == "train_clean_360" else []
        v = subprocess.run([sys.executable, "-m", "asr_gr.bin.validate_data_dir", *opts, str(data / s)],
                           capture_output=True, text=True)
        assert v.returncode == 0 and v.stdout.strip().endswith("OK"), (s, v.stderr)
        for name in t:  # sorted as LC_ALL=C sort does (bytes), unique keys
            keys = [line.split(" ", 1)[0] for line in _lines(data / s / name)]
            assert keys == sorted(keys, key=lambda k: k.encode()) and len(set(keys)) == len(keys), (s, name)
        # Kaldi's speaker is reader-chapter; the classifier's (utt2spkid) the reader; gender from SPEAKERS.TXT
        assert all(spk == u.rsplit("-", 1)[0] for u, spk in t["utt2spk"].items())
        assert all(r == u.split("-")[0] for u, r in t["utt2spkid"].items()) and set(t["utt2spkid"]) == set(t["utt2spk"])
        assert t["spk2gender"] == {spk: SEX[spk.split("-")[0]] for spk in t["utt2spk"].values()}
        assert t["spk2utt"] == {spk: " ".join(sorted(u for u, x in t["utt2spk"].items() if x == spk))
                                for spk in set(t["utt2spk"].values())}
        # wav.scp names the tree's FLAC files; utt2dur is their length
        flacs = _flacs(ls, sets[s])
        assert all(Path(t["wav.scp"][u]) == flacs[u].resolve() for u in t["wav.scp"]), s
        for u, d in t["utt2dur"].items():
            assert abs(float(d) - sf.info(str(flacs[u])).frames / 16000) <= 5e-4 + 1e-9, (s, u)  # 3 decimals

    train, held = tables["train_clean_100"], tables["train_heldout"]
    assert tables["train_clean_100"]["spk2gender"] == {"103-1240": "f", "103-1241": "f", "1034-121119": "m",
                                                       "1081-125237": "m", "1088-129236": "f", "1992-141719": "f"}
    assert sorted(set(train["utt2spkid"].values())) == ["103", "1034", "1081", "1088", "1992"]
    both = {name: {**train[name], **held[name]} for name in ("wav.scp", "utt2spk", "utt2spkid")}
    assert both["utt2spk"]["103-1241-0000"] == "103-1241" and both["utt2spk"]["103-1240-0000"] == "103-1240"
    assert both["utt2spkid"]["103-1241-0000"] == both["utt2spkid"]["103-1240-0000"] == "103"
    # the sample's files themselves are in wav.scp, unchanged
    for reader, chapter in TREE["train-clean-100"].items():
        utt = f"{reader}-{chapter}-0000"
        assert Path(both["wav.scp"][utt]).read_bytes() == (sample / f"{utt}.flac").read_bytes()
    # text: the trans.txt words; the 360 set has none
    all_text = {**train["text"], **held["text"], **tables["dev_clean"]["text"], **tables["test_clean"]["text"]}
    assert all_text == {u: _text(u) for u in all_text}
    assert set(all_text) == {u for part in ("train-clean-100", "dev-clean", "test-clean") for u in _flacs(ls, part)}
    # held out: 2 utterances of every training reader (103 has 4, the others 3), removed from train
    assert sorted(held["utt2spkid"].values()) == ["103", "103", "1034", "1034", "1081", "1081", "1088", "1088",
                                                  "1992", "1992"]
    assert not set(held["utt2spk"]) & set(train["utt2spk"])
    assert set(held["utt2spk"]) | set(train["utt2spk"]) == set(_flacs(ls, "train-clean-100"))
    # dev/test readers are not training readers
    for s in ("dev_clean", "test_clean", "train_clean_360"):
        assert not set(tables[s]["utt2spkid"].values()) & set(train["utt2spkid"].values()), s

    # train-clean-360, untranscribed: every FLAC (also of the chapter without trans.txt), no text,
    # and nothing of its trans.txt files (malformed, naming a missing FLAC) was read
    untr = tables["train_clean_360"]
    assert set(untr) == {"wav.scp", "utt2spk", "spk2utt", "utt2spkid", "spk2gender", "utt2dur"}
    assert set(untr["wav.scp"]) == set(_flacs(ls, "train-clean-360")) and len(untr["wav.scp"]) == 6
    assert untr["spk2gender"] == {"1363-135842": "f", "201-122255": "m", "211-122425": "f"}
    for f in [*data.rglob("*"), *dump.rglob("*")]:
        if f.is_file():
            assert MARKER.encode() not in f.read_bytes() and b"NO SUCH FLAC" not in f.read_bytes(), f

    # stage 2: fbank of the FLAC files; 10 ms shift, 25 ms window (snip_edges): 1 + (N - 400) // 160 frames
    for s in sets:
        scp = read_table(dump / s / "feats.scp")
        u2n = read_table(dump / s / "utt2num_frames")
        assert set(scp) == set(u2n) == set(tables[s]["wav.scp"]), s
        assert {Path(v.rsplit(":", 1)[0]).name for v in scp.values()} == {"feats.1.ark", "feats.2.ark"}, s  # --nj 2
        for u, n in u2n.items():
            samples = sf.info(tables[s]["wav.scp"][u]).frames
            assert int(n) == 1 + (samples - 400) // 160, (s, u)
            feats = kaldiio.load_mat(scp[u])
            assert feats.shape == (int(n), 80) and np.isfinite(feats).all(), (s, u)
        if s == "train_clean_360":
            assert not (dump / s / "text").exists()
        else:
            assert read_table(dump / s / "text") == tables[s]["text"]
    # Kaldi's LibriSpeech data dir has 103-1240-0000: 14.085 s, 1407 frames; so has this one
    feats = {s: read_table(dump / s / "feats.scp") for s in ("train_clean_100", "train_heldout")}
    n103 = kaldiio.load_mat({**feats["train_clean_100"], **feats["train_heldout"]}["103-1240-0000"])
    assert n103.shape == (1407, 80)
    # and they are Kaldi's fbank (torchaudio.compliance.kaldi) of the FLAC's samples
    x, _ = sf.read(str(sample / "103-1240-0000.flac"), dtype="float32")
    ref = kaldi.fbank(torch.from_numpy(x).unsqueeze(0) * 32768, num_mel_bins=80, dither=0.0, energy_floor=0.0)
    np.testing.assert_allclose(n103, ref.numpy(), atol=2e-3)
    assert (dump / "train_clean_100" / "cmvn.ark").is_file()
    tokens = {line.split()[0] for line in _lines(data / "token_list" / "char" / "tokens.txt")}
    assert set("".join(train["text"].values()).replace(" ", "")) <= tokens and "'" in tokens


def test_untranscribed_part_reads_only_flac_files(sample, tmp_path):
    """prepare_librispeech on train-clean-360 alone, untranscribed: trans.txt files are neither
    needed nor opened; a FLAC of another chapter is named in the error."""
    corpus = build_librispeech(tmp_path / "corpus", sample)
    ls = corpus / "LibriSpeech"
    summary = prepare_librispeech(corpus, tmp_path / "data", [], untranscribed=["train-clean-360"])
    assert summary == {"train_clean_360": {"readers": 3, "speakers": 3, "utterances": 6, "transcribed": False,
                                           "hours": pytest.approx(sum(sf.info(str(f)).duration for f in
                                                                      _flacs(ls, "train-clean-360").values()) / 3600)}}
    # the same part, transcribed, does read them, and stops at the first bad line
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "data2", ["train-clean-360"])
    assert e.value.path == str(ls / "train-clean-360" / "1363" / "135842" / "1363-135842.trans.txt")
    stray = ls / "train-clean-360" / "211" / "122425" / "211-999-0000.flac"
    shutil.copyfile(sample / "211-122425-0000.flac", stray)
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "data3", [], untranscribed=["train-clean-360"])
    assert e.value.path == str(stray) and e.value.line is None and "211-122425-<number>.flac" in e.value.reason


def _cli(corpus: Path, data: Path, *parts):
    return subprocess.run([sys.executable, "-m", "asr_gr.bin.prepare_librispeech", "--root", str(corpus),
                           "--data", str(data), "--parts", " ".join(parts)], capture_output=True, text=True)


def test_errors_on_real_layout_name_file_and_line(sample, tmp_path):
    corpus = build_librispeech(tmp_path / "corpus", sample)
    ls = corpus / "LibriSpeech"
    # a trans.txt line naming a FLAC that is not there
    trans = ls / "train-clean-100" / "1034" / "121119" / "1034-121119.trans.txt"
    trans.write_text(trans.read_text() + "1034-121119-0003 AND THEN HE LEFT\n")
    p = _cli(corpus, tmp_path / "data", "train-clean-100")
    assert p.returncode == 1 and not (tmp_path / "data" / "train_clean_100").exists()
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ERROR: {trans}:4: no audio for utterance '1034-121119-0003'"), p.stderr
    # a reader missing from SPEAKERS.TXT: its first utterance's trans.txt line is named
    speakers = "".join(line for line in _speakers_txt().splitlines(True) if not line.startswith("1088 "))
    other = build_librispeech(tmp_path / "other", sample, speakers=speakers)
    p = _cli(other, tmp_path / "data", "dev-clean", "train-clean-100")
    err = p.stderr.strip().splitlines()
    t1088 = other / "LibriSpeech" / "train-clean-100" / "1088" / "129236" / "1088-129236.trans.txt"
    assert p.returncode == 1 and len(err) == 1, p.stderr
    assert err[0].startswith(f"ERROR: {t1088}:1: reader 1088 of utterance '1088-129236-0000' is not in "), err
    assert err[0].endswith("SPEAKERS.TXT")
    # ... and of an untranscribed part (no trans.txt read): its first FLAC file is named
    (ls / "SPEAKERS.TXT").write_text("".join(line for line in _speakers_txt().splitlines(True)
                                             if not line.startswith("1363 ")))
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "d", [], untranscribed=["train-clean-360"])
    assert e.value.path == str(ls / "train-clean-360" / "1363" / "135842" / "1363-135842-0000.flac")
    assert e.value.line is None and "reader 1363" in e.value.reason


def test_speakers_txt_real_rows_and_subset_check(sample, tmp_path, caplog):
    """The real rows parse (reader 60's name holds '|', a name cut at 50 characters, 'Nelly ()'); readers
    found in another part than their SPEAKERS.TXT subset are warned about, naming the lines."""
    p = tmp_path / "SPEAKERS.TXT"
    p.write_text(_speakers_txt(placed=False))
    spk = read_speakers(p)
    assert len(spk) == len(REAL_ROWS.splitlines())
    r60 = spk["60"]
    assert (r60.gender, r60.subset, r60.minutes, r60.name) == ("m", "train-clean-100", 20.18, "|CBW|Simon")
    assert spk["636"].name == "Zale Schafer (Rose May Chamberlin Memorial Foundat" and spk["1585"].name == "Nelly ()"
    assert spk["1089"].subset == "test-clean" and spk["20"].subset == "train-other-500"
    assert {r: spk[r].gender for r in SEX} == SEX
    # the real rows say train-clean-100 for the readers this tree has in dev-clean: a warning names them
    corpus = build_librispeech(tmp_path / "corpus", sample, speakers=_speakers_txt(placed=False))
    caplog.set_level("WARNING")
    prepare_librispeech(corpus, tmp_path / "data", ["train-clean-100", "dev-clean"], durations=False)
    warned = [r.getMessage() for r in caplog.records if "another subset" in r.getMessage()]
    line118 = 1 + SPEAKERS_HEADER.count("\n") + REAL_ROWS.splitlines().index(
        next(r for r in REAL_ROWS.splitlines() if r.startswith("118 ")))
    assert len(warned) == 1 and warned[0].startswith("LibriSpeech dev-clean: 2 of its 2 readers"), warned
    assert f"118 (line {line118}: train-clean-100)" in warned[0]
