"""The AN4 recipe: data prep (asr_gr.corpora.an4) on the micro corpus and on made-up copies, and
egs/an4/asr1/run.sh stages 1-5 with one tiny epoch on ../shared/data/an4_micro."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_RECIPE_CONF as TINY_CONF, copy_recipe
import soundfile as sf

from asr_gr.bin import prepare_an4 as prepare_an4_cli
from asr_gr.corpora.an4 import kaldi_utt_id, prepare_an4, speaker_of
from asr_gr.data.kaldi_dir import read_table, validate_data_dir
from asr_gr.utils import DataError

SETS = ("train", "train_heldout", "dev", "test")


def _fake_an4(root: Path, train_lines, test_lines, *, ext=".wav", fmt="WAV"):
    """A made-up AN4 copy: each (words, id) gets a 0.5 s tone under wav/<set>/<spk>/<id><ext>."""
    for trans, wav_dir, lines in (("an4_train.transcription", "an4_clstk", train_lines),
                                  ("an4_test.transcription", "an4test_clstk", test_lines)):
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc" / trans).write_text("".join(f"<s> {w} </s> ({u})\n" for w, u in lines))
        for _, u in lines:
            p = root / "wav" / wav_dir / speaker_of(u) / f"{u}{ext}"
            p.parent.mkdir(parents=True, exist_ok=True)
            x = (0.1 * np.sin(np.arange(8000) * 0.05)).astype(np.float32)
            sf.write(p, x, 16000, format=fmt, subtype="PCM_16")
    return root


TRAIN = [("YES", "an1-fabc-b"), ("NO", "an2-fabc-b"), ("GO", "an3-mdef-b"), ("STOP", "an4-mdef-b"),
         ("HELP", "an5-mghi-b"), ("ONE TWO", "cen1-mjkl-b")]
TEST = [("YES", "an9-fxyz-b")]


def test_ids_and_speakers():
    assert speaker_of("an251-fash-b") == "fash"
    assert kaldi_utt_id("an251-fash-b") == "fash-an251-b"
    assert speaker_of("an402-mdms2-b") == "mdms2"


def test_micro_corpus(shared_data, tmp_path):
    summary = prepare_an4(shared_data / "an4_micro", tmp_path / "data")  # parent of an4/ also works
    for s in SETS:
        assert validate_data_dir(tmp_path / "data" / s) == [], s
    tables = {s: read_table(tmp_path / "data" / s / "utt2spk") for s in SETS}
    spk = {s: set(t.values()) for s, t in tables.items()}
    assert tables["test"]["fjlp-cen3-b"] == "fjlp" and tables["test"]["mdms2-an402-b"] == "mdms2"
    assert all(u.startswith(sp + "-") for t in tables.values() for u, sp in t.items())
    assert not spk["dev"] & spk["train"] and not spk["test"] & spk["train"] and not spk["dev"] & spk["test"]
    assert spk["train_heldout"] <= spk["train"]  # held-out utterances are of seen speakers
    assert sum(len(tables[s]) for s in ("train", "train_heldout", "dev")) == 30 and len(tables["test"]) == 10
    assert summary["dev"]["speakers"] >= 1
    text = read_table(tmp_path / "data" / "test" / "text")
    assert text["fjlp-cen3-b"] == "ONE FIFTY"
    gender = read_table(tmp_path / "data" / "train" / "spk2gender")
    assert all(g == s[0] for s, g in gender.items())
    wav = read_table(tmp_path / "data" / "train" / "wav.scp")
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in wav.values())
    dur = read_table(tmp_path / "data" / "test" / "utt2dur")
    assert all(0.5 < float(d) < 1.5 for d in dur.values())


def test_heldout_and_dev_split(tmp_path):
    root = _fake_an4(tmp_path / "an4", TRAIN, TEST)
    prepare_an4(root, tmp_path / "data", dev_fraction=0.25)
    t = {s: read_table(tmp_path / "data" / s / "utt2spk") for s in SETS}
    assert len(set(t["dev"].values())) == 1  # round(0.25 * 4) speakers, whole
    dev_spk = next(iter(t["dev"].values()))
    assert dev_spk not in t["train"].values() and dev_spk not in t["train_heldout"].values()
    # one utterance held out of each remaining speaker with two or more
    for sp in {"fabc", "mdef"} - {dev_spk}:
        assert list(t["train_heldout"].values()).count(sp) == 1 and list(t["train"].values()).count(sp) == 1


def test_sphere_files(tmp_path):
    root = _fake_an4(tmp_path / "an4", TRAIN, TEST, ext=".sph", fmt="NIST")
    prepare_an4(root, tmp_path / "data", sph2pipe="")  # "": no sph2pipe, libsndfile reads SPHERE
    wav = read_table(tmp_path / "data" / "test" / "wav.scp")
    assert wav["fxyz-an9-b"].endswith("an9-fxyz-b.sph")
    assert read_table(tmp_path / "data" / "test" / "utt2dur")["fxyz-an9-b"] == "0.500"
    prepare_an4(root, tmp_path / "data2", sph2pipe="/opt/sph2pipe")
    entry = read_table(tmp_path / "data2" / "test" / "wav.scp")["fxyz-an9-b"]
    assert entry.startswith("/opt/sph2pipe -f wav ") and entry.endswith(".sph |")
    assert read_table(tmp_path / "data2" / "test" / "utt2dur")["fxyz-an9-b"] == "0.500"  # from the header


def test_malformed_line_names_file_and_line(tmp_path):
    root = _fake_an4(tmp_path / "an4", TRAIN, TEST)
    trans = root / "etc" / "an4_train.transcription"
    trans.write_text(trans.read_text() + "<s> YES </s> an7-fabc-b\n")
    with pytest.raises(DataError) as e:
        prepare_an4(root, tmp_path / "data")
    assert e.value.path == str(trans) and e.value.line == len(TRAIN) + 1
    assert "(utt-id)" in str(e.value)


def test_missing_wav_names_file_and_line(tmp_path, capsys):
    root = _fake_an4(tmp_path / "an4", TRAIN, TEST)
    (root / "wav" / "an4_clstk" / "mdef" / "an3-mdef-b.wav").unlink()
    with pytest.raises(DataError) as e:
        prepare_an4(root, tmp_path / "data")
    assert e.value.path == str(root / "etc" / "an4_train.transcription") and e.value.line == 3
    assert "an3-mdef-b" in e.value.reason
    with pytest.raises(SystemExit) as ex:  # the CLI: one ERROR line, exit status 1
        prepare_an4_cli.main(["--an4-root", str(root), "--data", str(tmp_path / "data")])
    assert ex.value.code == 1 and "an4_train.transcription:3:" in capsys.readouterr().err


def test_not_an_an4_copy(tmp_path):
    with pytest.raises(DataError, match="not an AN4 copy"):
        prepare_an4(tmp_path, tmp_path / "data")


@pytest.fixture
def recipe(tmp_path):
    d = copy_recipe("an4", tmp_path / "repo")
    (d / "conf" / "tiny.yaml").write_text(TINY_CONF)
    return d


def test_run_sh_stages_1_to_5(shared_data, recipe, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    an4 = tmp_path / "my corpora" / "an4"  # a space in the path survives --data-prep-opts
    shutil.copytree(shared_data / "an4_micro" / "an4", an4)
    p = subprocess.run(["./run.sh", "--an4-root", str(an4),
                        "--train-config", "conf/tiny.yaml", "--nj", "1", "--aux", "mtl",
                        "--stage", "1", "--stop-stage", "5"],
                       cwd=recipe, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not (recipe / "downloads").exists()  # --an4-root: nothing downloaded
    exp = recipe / "exp" / "tiny_mtl"
    hyp = read_table(exp / "decode_test_greedy" / "hyp.txt", allow_empty_value=True)
    assert set(hyp) == set(read_table(recipe / "data" / "test" / "text"))
    result = (exp / "decode_test_greedy" / "score" / "result.txt").read_text()
    assert "%WER" in result and "Sum/Avg" in result
    assert (exp / "decode_dev_greedy" / "score" / "result.txt").exists()
    assert (exp / "decode_train_heldout_greedy" / "spk_acc.json").exists()
    assert "| tiny_mtl | mtl |" in (recipe / "exp" / "RESULTS.md").read_text()


def test_data_prep_rejects_a_missing_root(recipe, tmp_path):
    p = subprocess.run(["local/data_prep.sh", "--an4-root", str(tmp_path / "nope")], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "does not exist" in p.stderr
