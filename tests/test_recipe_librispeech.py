"""The LibriSpeech recipe: data prep (asr_gr.corpora.librispeech, its CLI, local/data_prep.sh via
run.sh stage 1) on a miniature LibriSpeech tree of short FLAC files, its errors, and run.sh's option
parsing. Nothing is downloaded."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_recipe
import soundfile as sf

from asr_gr.bin import prepare_librispeech as cli
from asr_gr.corpora.librispeech import data_name, prepare_librispeech, read_speakers
from asr_gr.data.kaldi_dir import read_table, speaker_labels, validate_data_dir
from asr_gr.utils import DataError


SPEAKERS_TXT = """\
; Some readers of LibriSpeech
;ID  |SEX| SUBSET           |MINUTES| NAME
60   | M | train-clean-100  | 20.18 | |CBW|Simon
103  | F | train-clean-100  | 25.03 | Kristin
1088 | F | train-clean-360  | 25.02 | Someone
1272 | M | dev-clean        |  8.13 | John
2035 | F | dev-clean        |  8.12 | Sharon
3536 | M | dev-other        |  8.12 | Arielle
1089 | M | test-clean       |  8.06 | Someone Else
1688 | F | test-other       |  8.00 | Another One
"""

# part -> {reader: {chapter: number of utterances}}
TREE = {
    "train-clean-100": {"60": {"121082": 3, "121083": 2}, "103": {"1240": 4}},
    "train-clean-360": {"1088": {"134315": 3}},
    "dev-clean": {"1272": {"128104": 2}, "2035": {"147960": 2}},
    "dev-other": {"3536": {"8226": 2}},
    "test-clean": {"1089": {"134686": 2}},
    "test-other": {"1688": {"142285": 2}},
}


def _mini_librispeech(top: Path, tree=TREE, speakers=SPEAKERS_TXT) -> Path:
    """<top>/LibriSpeech/{SPEAKERS.TXT,<part>/<reader>/<chapter>/...}: 0.2 s tones/noise as FLAC."""
    ls = top / "LibriSpeech"
    ls.mkdir(parents=True)
    (ls / "SPEAKERS.TXT").write_text(speakers)
    rng = np.random.default_rng(0)
    for part, readers in tree.items():
        for reader, chapters in readers.items():
            for chapter, n in chapters.items():
                d = ls / part / reader / chapter
                d.mkdir(parents=True)
                lines = []
                for i in range(n):
                    utt = f"{reader}-{chapter}-{i:04d}"
                    t = np.arange(3200) / 16000
                    x = 0.1 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.01 * rng.standard_normal(3200)
                    sf.write(d / f"{utt}.flac", x.astype(np.float32), 16000, format="FLAC", subtype="PCM_16")
                    lines.append(f"{utt} WORD {reader} NUMBER {i}\n")
                (d / f"{reader}-{chapter}.trans.txt").write_text("".join(lines))
    return top


@pytest.fixture
def corpus(tmp_path):
    return _mini_librispeech(tmp_path / "corpus")


ALL = ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]


def test_prepare_sets_speakers_and_heldout(corpus, tmp_path):
    data = tmp_path / "data"
    summary = prepare_librispeech(corpus, data, ALL, untranscribed=["train_clean_360"], heldout_per_reader=2)
    assert set(summary) == {"train_clean_100", "dev_clean", "dev_other", "test_clean", "test_other",
                            "train_clean_360", "train_heldout"}
    for s in summary:
        assert validate_data_dir(data / s, no_text=(s == "train_clean_360")) == [], s
    # Kaldi's speaker is reader-chapter; the classifier's is the reader (utt2spkid).
    u2s = read_table(data / "train_clean_100" / "utt2spk")
    u2r = read_table(data / "train_clean_100" / "utt2spkid")
    assert set(u2s) == set(u2r)
    assert all(u2s[u] == u.rsplit("-", 1)[0] and u2r[u] == u.split("-")[0] for u in u2s)
    assert speaker_labels(data / "dev_clean")["1272-128104-0000"] == "1272"
    assert read_table(data / "train_clean_100" / "spk2gender") == {"103-1240": "f", "60-121082": "m",
                                                                   "60-121083": "m"}
    text = read_table(data / "dev_clean" / "text")
    assert text["2035-147960-0001"] == "WORD 2035 NUMBER 1"
    wav = read_table(data / "test_other" / "wav.scp")
    assert all(Path(p).is_absolute() and p.endswith(".flac") and Path(p).is_file() for p in wav.values())
    assert abs(float(read_table(data / "test_clean" / "utt2dur")["1089-134686-0000"]) - 0.2) < 1e-3
    # held out: 2 of every training reader, none left in train; untranscribed parts are not split
    held = read_table(data / "train_heldout" / "utt2spkid")
    assert sorted(held.values()) == ["103", "103", "60", "60"]
    assert not set(held) & set(u2s)
    assert len(u2s) + len(held) == 9
    assert validate_data_dir(data / "train_heldout") == []
    assert not (data / "train_clean_360" / "text").exists()
    assert read_table(data / "train_clean_360" / "utt2spkid") == {f"1088-134315-000{i}": "1088" for i in range(3)}
    # the same seed gives the same held-out choice
    prepare_librispeech(corpus, tmp_path / "data2", ["train-clean-100"])
    assert read_table(tmp_path / "data2" / "train_heldout" / "utt2spk") == read_table(data / "train_heldout" / "utt2spk")


def test_cli_and_names(corpus, tmp_path, capsys):
    assert data_name("train-clean-100") == "train_clean_100"
    prepare_librispeech(corpus, tmp_path / "data", ["dev-clean"])  # an earlier run, with utt2dur
    cli.main(["--root", str(corpus / "LibriSpeech"), "--data", str(tmp_path / "data"),
              "--parts", "train_clean_100,dev-clean", "--heldout-per-reader", "1", "--no-durations"])
    out = capsys.readouterr().out
    assert "train_clean_100" in out and "train_heldout" in out
    assert sorted(read_table(tmp_path / "data" / "train_heldout" / "utt2spkid").values()) == ["103", "60"]
    assert not (tmp_path / "data" / "dev_clean" / "utt2dur").exists()  # the stale one is gone
    assert validate_data_dir(tmp_path / "data" / "dev_clean") == []
    with pytest.raises(SystemExit) as e:
        cli.main(["--root", str(corpus), "--data", str(tmp_path / "d"), "--parts", "train-clean-42"])
    assert e.value.code == 1 and "unknown LibriSpeech part 'train-clean-42'" in capsys.readouterr().err


def test_missing_flac_names_trans_file_and_line(corpus, tmp_path, capsys):
    chap = corpus / "LibriSpeech" / "train-clean-100" / "103" / "1240"
    (chap / "103-1240-0002.flac").unlink()
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "data", ["train-clean-100"])
    assert e.value.path == str(chap / "103-1240.trans.txt") and e.value.line == 3
    assert "103-1240-0002" in e.value.reason
    with pytest.raises(SystemExit) as ex:  # the CLI: one ERROR line naming file:line, exit status 1
        cli.main(["--root", str(corpus), "--data", str(tmp_path / "data"), "--parts", "train-clean-100"])
    assert ex.value.code == 1 and "103-1240.trans.txt:3:" in capsys.readouterr().err


def test_reader_missing_from_speakers_txt(tmp_path):
    speakers = "".join(l + "\n" for l in SPEAKERS_TXT.splitlines() if not l.startswith("103 "))
    corpus = _mini_librispeech(tmp_path / "corpus", speakers=speakers)
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "data", ["train-clean-100"])
    assert e.value.path.endswith("103-1240.trans.txt") and e.value.line == 1
    assert "reader 103" in e.value.reason and "SPEAKERS.TXT" in e.value.reason


def test_malformed_speakers_txt_and_bad_lines(tmp_path):
    p = tmp_path / "SPEAKERS.TXT"
    p.write_text(SPEAKERS_TXT + "1234 | X | dev-clean | 3.0 | Nobody\n")
    with pytest.raises(DataError) as e:
        read_speakers(p)
    assert e.value.line == len(SPEAKERS_TXT.splitlines()) + 1 and "M or F" in e.value.reason
    p.write_text(SPEAKERS_TXT + "1234 | M | dev-clean\n")
    with pytest.raises(DataError, match=r"SPEAKERS.TXT:11: expected 'ID \| SEX"):
        read_speakers(p)
    assert read_speakers(_write(p, SPEAKERS_TXT))["60"].name == "|CBW|Simon"
    corpus = _mini_librispeech(tmp_path / "corpus")
    trans = corpus / "LibriSpeech" / "dev-clean" / "1272" / "128104" / "1272-128104.trans.txt"
    trans.write_text(trans.read_text() + "1272-999-0000 WRONG CHAPTER\n")
    with pytest.raises(DataError) as e:
        prepare_librispeech(corpus, tmp_path / "data", ["dev-clean"])
    assert e.value.path == str(trans) and e.value.line == 3
    with pytest.raises(DataError, match="not a LibriSpeech copy"):
        prepare_librispeech(tmp_path / "nothing", tmp_path / "data", ["dev-clean"])


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


@pytest.fixture
def recipe(tmp_path):
    d = copy_recipe("librispeech", tmp_path / "repo")
    return d


def _run(recipe, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(["./run.sh", *args], cwd=recipe, env=env, capture_output=True, text=True)


def test_run_sh_option_parsing(recipe):
    p = _run(recipe, "--stage", "3", "--stop-stage", "2", "--aux", "adversarial")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "finished stages 3-2" in p.stderr and not (recipe / "data").exists()
    p = _run(recipe, "--stage", "3", "--no-such-option", "1")
    assert p.returncode != 0 and "--no-such-option" in p.stderr
    p = _run(recipe, "--help")
    assert p.returncode == 0 and "--librispeech-root" in p.stdout and "Options of asr.sh" in p.stdout


def test_run_sh_stage_1_semi_supervised(recipe, corpus):
    """run.sh --librispeech-root ... --untranscribed-set train_clean_360: stage 1 prepares 360 without text."""
    p = _run(recipe, "--librispeech-root", str(corpus), "--untranscribed-set", "train_clean_360",
             "--stage", "1", "--stop-stage", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    data = recipe / "data"
    assert not (recipe / "downloads").exists()  # an existing copy: nothing downloaded
    for s in ("train_clean_100", "dev_clean", "dev_other", "test_clean", "test_other", "train_heldout"):
        assert (data / s / "text").is_file(), s
    assert (data / "train_clean_360" / "utt2spkid").is_file() and not (data / "train_clean_360" / "text").exists()


def test_data_prep_rejects_unknown_part_and_missing_root(recipe, tmp_path):
    p = subprocess.run(["local/data_prep.sh", "--parts", "train-clean-42"], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "unknown LibriSpeech part 'train-clean-42'" in p.stderr
    p = subprocess.run(["local/data_prep.sh", "--librispeech-root", str(tmp_path / "nope")], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "does not exist" in p.stderr
    assert not (recipe / "downloads").exists()
