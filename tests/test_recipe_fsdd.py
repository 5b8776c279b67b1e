"""The FSDD recipe (real speech, 8 kHz): data prep (asr_gr.corpora.fsdd) on made-up copies and on
../shared/data/fsdd, and egs/fsdd/asr1/run.sh stages 1-7 with one tiny epoch on a subset of it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_RECIPE_CONF as TINY_CONF, copy_recipe

from asr_gr.bin import prepare_fsdd as prepare_fsdd_cli
from asr_gr.corpora.fsdd import WORDS, parse_name, parse_takes, prepare_fsdd, read_genders, read_recordings, split_sets
from asr_gr.data.kaldi_dir import read_table, validate_data_dir
from asr_gr.utils import ConfigError, DataError

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def _fake_fsdd(root: Path, speakers=SPEAKERS, digits=range(3), takes=range(7)) -> Path:
    """A made-up FSDD copy: recordings/<digit>_<spk>_<take>.wav, 0.25 s tones at 8 kHz."""
    (root / "recordings").mkdir(parents=True)
    x = (0.1 * np.sin(np.arange(2000) * 0.07)).astype(np.float32)
    for s in speakers:
        for d in digits:
            for t in takes:
                sf.write(root / "recordings" / f"{d}_{s}_{t}.wav", x, 8000, subtype="PCM_16")
    return root


def test_names_and_takes(tmp_path):
    r = parse_name(tmp_path / "7_jackson_32.wav")
    assert (r.utt, r.spk, r.digit, r.take, r.words) == ("jackson-7-32", "jackson", 7, 32, "SEVEN")
    with pytest.raises(DataError, match=r"not of the form <digit>_<speaker>_<take>\.wav") as e:
        parse_name(tmp_path / "seven_jackson_32.wav")
    assert e.value.path == str(tmp_path / "seven_jackson_32.wav")
    with pytest.raises(DataError, match="unknown digit '12'"):
        parse_name(tmp_path / "12_jackson_3.wav")
    assert parse_takes("0-4") == [0, 1, 2, 3, 4] and parse_takes("0,2 10-11") == [0, 2, 10, 11]
    with pytest.raises(ConfigError, match="'4-1'"):
        parse_takes("4-1")


def test_sets_are_split_by_speaker_and_take(tmp_path):
    root = _fake_fsdd(tmp_path / "free-spoken-digit-dataset-1.0.10")
    summary = prepare_fsdd(tmp_path, tmp_path / "data")  # the tarball's parent dir also works
    for s in ("train", "train_heldout", "dev", "test", "probe"):
        assert validate_data_dir(tmp_path / "data" / s) == [], s
    spk = {s: read_table(tmp_path / "data" / s / "utt2spk") for s in summary}
    assert set(spk["test"].values()) == {"theo"} and set(spk["dev"].values()) == {"lucas"}
    train_spk = {"george", "jackson", "nicolas", "yweweler"}
    assert set(spk["train"].values()) == set(spk["train_heldout"].values()) == train_spk
    takes = {s: {int(u.rsplit("-", 1)[1]) for u in spk[s]} for s in spk}
    assert takes["train"] == {5, 6} and takes["train_heldout"] == takes["probe"] == {0, 1, 2, 3, 4}
    assert set(spk["probe"].values()) == set(SPEAKERS)
    assert len(spk["test"]) == 3 * 7 and len(spk["train"]) == 4 * 3 * 2
    text = read_table(tmp_path / "data" / "test" / "text")
    assert text["theo-2-6"] == "TWO"
    assert read_table(tmp_path / "data" / "train" / "utt2dur")["jackson-0-5"] == "0.250"
    assert read_table(tmp_path / "data" / "dev" / "wav.scp")["lucas-1-3"] == str(root / "recordings" / "1_lucas_3.wav")
    assert read_table(tmp_path / "data" / "train" / "spk2gender") == {s: "m" for s in train_spk}  # upstream's
    # other speakers and held-out takes; too few takes for any training left is an error
    prepare_fsdd(root, tmp_path / "data2", test_speaker="jackson", dev_speaker="theo", heldout_takes=[0])
    assert set(read_table(tmp_path / "data2" / "test" / "utt2spk").values()) == {"jackson"}
    assert len(read_table(tmp_path / "data2" / "train_heldout" / "utt2spk")) == 4 * 3
    with pytest.raises(DataError, match="no training recordings left"):
        prepare_fsdd(root, tmp_path / "data3", max_takes=5)
    with pytest.raises(DataError, match="--test-speaker 'ann' has no recordings here"):
        prepare_fsdd(root, tmp_path / "data3", test_speaker="ann")
    with pytest.raises(ConfigError, match="must differ"):
        split_sets(read_recordings(root), test_speaker="theo", dev_speaker="theo")


def test_genders_from_metadata_without_running_it(tmp_path):
    root = _fake_fsdd(tmp_path / "fsdd", speakers=("ann", "bob", "theo", "lucas", "eve"))
    (root / "metadata.py").write_text(
        "metadata = {\n  'ann': {'gender': 'female', 'accent': 'x'},\n  'bob': {'gender': 'male'},\n"
        "  'theo': {'gender': 'male'}, 'lucas': {'gender': 'male'},\n}\n")
    assert read_genders(root) == {"ann": "f", "bob": "m", "theo": "m", "lucas": "m"}
    prepare_fsdd(root, tmp_path / "data")
    assert read_table(tmp_path / "data" / "test" / "spk2gender") == {"theo": "m"}
    assert not (tmp_path / "data" / "train" / "spk2gender").exists()  # eve has none: Kaldi wants all or none
    (root / "metadata.py").write_text("import os\nmetadata = {'ann': os.getcwd()}\n")
    with pytest.raises(DataError, match="'metadata' is not a dict literal") as e:
        read_genders(root)
    assert e.value.line == 2
    (root / "metadata.py").write_text("metadata = {'ann': \n")
    with pytest.raises(DataError, match="not valid Python"):
        read_genders(root)


def test_bad_copies_name_the_file(tmp_path, capsys):
    with pytest.raises(DataError, match="not an FSDD copy"):
        prepare_fsdd(tmp_path, tmp_path / "data")
    root = _fake_fsdd(tmp_path / "fsdd")
    shutil.copy(root / "recordings" / "1_theo_3.wav", root / "recordings" / "1_theo_03.wav")
    with pytest.raises(DataError, match=r"same speaker, digit and take as 1_theo_03\.wav \('theo-1-3'\)") as e:
        prepare_fsdd(root, tmp_path / "data")
    assert e.value.path.endswith("1_theo_3.wav")  # the file met second, in name order
    (root / "recordings" / "1_theo_03.wav").unlink()
    (root / "recordings" / "2_lucas_4.wav").write_bytes(b"RIFF not a wav")
    with pytest.raises(SystemExit) as ex:  # the CLI: one ERROR line naming the file, exit status 1
        prepare_fsdd_cli.main(["--fsdd-root", str(root), "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert ex.value.code == 1 and "2_lucas_4.wav: cannot read audio of 'lucas-2-4'" in err
    assert not (tmp_path / "data" / "train").exists()  # nothing half-written


def test_the_real_copy(shared_data, tmp_path):
    summary = prepare_fsdd(shared_data / "fsdd", tmp_path / "data")
    counts = {s: (r["speakers"], r["utterances"]) for s, r in summary.items()}
    assert counts == {"train": (4, 1800), "train_heldout": (4, 200), "dev": (1, 500), "test": (1, 500),
                      "probe": (6, 300)}
    dur = [float(d) for d in read_table(tmp_path / "data" / "test" / "utt2dur").values()]
    assert 0.1 < min(dur) and max(dur) < 3.0 and 2.0 < sum(dur) / 60 < 5.0  # real recordings: 0.1-2.3 s
    assert read_table(tmp_path / "data" / "train" / "text")["jackson-7-32"] == "SEVEN"


@pytest.fixture
def recipe(tmp_path):
    d = copy_recipe("fsdd", tmp_path / "repo")
    (d / "conf" / "tiny.yaml").write_text(TINY_CONF)
    return d


def test_run_sh_stages_1_to_7(shared_data, recipe, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    fsdd = tmp_path / "my corpora" / "fsdd"  # a space in the path survives --data-prep-opts
    (fsdd / "recordings").mkdir(parents=True)
    for p in sorted((shared_data / "fsdd" / "recordings").glob("*.wav")):  # takes 0-5: a 2-minute subset
        if int(p.stem.rsplit("_", 1)[1]) < 6:
            (fsdd / "recordings" / p.name).symlink_to(p)
    p = subprocess.run(["./run.sh", "--fsdd-root", str(fsdd), "--corpus-opts", "--heldout-takes 0-1",
                        "--train-config", "conf/tiny.yaml", "--nj", "1", "--aux", "none adversarial",
                        "--probe-opts", "--epochs 20 --num-samples 100"],
                       cwd=recipe, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not (recipe / "downloads").exists()  # --fsdd-root: nothing downloaded
    fbank = json.loads((recipe / "dump" / "fbank" / "test" / "fbank.json").read_text())
    assert fbank["sample_frequency"] == 8000 and fbank["num_mel_bins"] == 40  # --fs 8000, 40 mel bins
    for aux in ("none", "adversarial"):
        exp = recipe / "exp" / f"tiny_{aux}"
        for s in ("dev", "test"):
            hyp = read_table(exp / f"decode_{s}_greedy" / "hyp.txt", allow_empty_value=True)
            assert set(hyp) == set(read_table(recipe / "data" / s / "text")), s
            assert "%WER" in (exp / f"decode_{s}_greedy" / "score" / "result.txt").read_text()
            lex = read_table(exp / f"decode_{s}_beam20_lm1_ws0" / "hyp.txt", allow_empty_value=True)
            assert set(lex) == set(hyp), s  # the lexicon search emits digit words and nothing else
            assert {w for h in lex.values() for w in h.split()} <= set(WORDS), s
        for s in ("probe", "train_heldout"):
            assert (exp / f"probe_{s}" / "probe.tsv").read_text().splitlines()[1].startswith(f"{s}\t0\t")
    compare = (recipe / "exp" / "compare.md").read_text()
    assert compare.startswith("# Comparison of systems on `test` (decoding setup `beam20_lm1_ws0`)\n")
    assert "| tiny_none | tiny_adversarial |" in compare  # the paired WER difference
    assert "## `tiny_adversarial` − `tiny_none`" in (recipe / "exp" / "probe_compare_probe.md").read_text()
    assert "| tiny_none | none |" in (recipe / "exp" / "RESULTS.md").read_text()


def test_data_prep_rejects_a_missing_root(recipe, tmp_path):
    p = subprocess.run(["local/data_prep.sh", "--fsdd-root", str(tmp_path / "nope")], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "does not exist" in p.stderr
