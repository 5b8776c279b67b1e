"""Reusing features that Kaldi/ESPnet made: feats.scp with (compressed) matrices and relative paths,
optional per-speaker cmvn.scp, validated and turned into a dump dir that training reads."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from asr_gr.bin import import_feats
from asr_gr.data.dataset import FeatureDataset
from asr_gr.data.kaldi_dir import read_table
from asr_gr.features.cmvn import CMVN

ROOT = Path(__file__).resolve().parents[1]


def _kaldi_dir(tmp_path, dims=(13, 13, 13)):
    """A Kaldi-style layout: recipe/data/train with feats.scp pointing (relative to recipe/) into
    recipe/mfcc/raw_mfcc_train.ark written compressed, and a per-speaker cmvn.scp."""
    recipe = tmp_path / "recipe"
    d = recipe / "data" / "train"
    (recipe / "mfcc").mkdir(parents=True)
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    utts = [f"spk{i % 2}-utt{i}" for i in range(len(dims))]
    mats = {u: (rng.standard_normal((30 + 5 * i, dim)) * 4 + 10).astype(np.float32)
            for i, (u, dim) in enumerate(zip(utts, dims))}
    cwd = os.getcwd()
    os.chdir(recipe)
    try:  # written from the recipe dir, so the scp holds relative paths, as Kaldi's does
        kaldiio.save_ark("mfcc/raw_mfcc_train.ark", mats, scp="data/train/feats.scp", compression_method=2)
        stats = {}
        for spk in ("spk0", "spk1") if len(set(dims)) == 1 else ():
            f = np.concatenate([m for u, m in mats.items() if u.startswith(spk)]).astype(np.float64)
            stats[spk] = np.stack([np.append(f.sum(0), len(f)), np.append((f ** 2).sum(0), 0)])
        if stats:
            kaldiio.save_ark("mfcc/cmvn_train.ark", stats, scp="data/train/cmvn.scp")
    finally:
        os.chdir(cwd)
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in sorted(utts)))
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u for u in sorted(utts) if u.startswith(s))}\n"
                                       for s in ("spk0", "spk1")))
    (d / "text").write_text("".join(f"{u} HELLO\n" for u in sorted(utts)))
    return recipe, d, mats


def test_import_kaldi_made_features_and_cmvn(tmp_path):
    recipe, d, mats = _kaldi_dir(tmp_path)
    assert not Path(read_table(d / "feats.scp")["spk0-utt0"]).is_absolute()
    out = tmp_path / "dump"
    import_feats.main(["--data-dir", str(d), "--out-dir", str(out)])  # paths found via the data dir's parents
    scp = read_table(out / "feats.scp")
    assert all(os.path.isabs(v.rsplit(":", 1)[0]) for v in scp.values())
    loaded = dict(kaldiio.load_scp(str(out / "feats.scp")))
    for u, m in mats.items():
        assert np.abs(loaded[u] - m).max() < 0.2  # compressed: equal up to the 8/16-bit quantisation
    assert {u: int(n) for u, n in read_table(out / "utt2num_frames").items()} == \
           {u: m.shape[0] for u, m in mats.items()}
    assert (out / "text").read_text() == (d / "text").read_text()
    # per-speaker stats kept (keyed by speaker, absolute paths) and summed into the global cmvn.ark
    spk = dict(kaldiio.load_scp(str(out / "cmvn.scp")))
    glob = kaldiio.load_mat(str(out / "cmvn.ark"))
    np.testing.assert_allclose(glob, spk["spk0"] + spk["spk1"])
    assert glob[0, -1] == sum(m.shape[0] for m in mats.values())
    # training reads the result
    ds = FeatureDataset(out, cmvn=CMVN.from_file(out / "cmvn.ark"))
    assert len(ds) == 3 and ds[0]["feats"].shape[1] == 13


def test_dimension_mismatch_and_unreadable_matrix(tmp_path, capsys):
    recipe, d, _ = _kaldi_dir(tmp_path, dims=(13, 13, 40))
    out = tmp_path / "dump"
    with pytest.raises(SystemExit):
        import_feats.main(["--data-dir", str(d), "--out-dir", str(out), "--path-root", str(recipe)])
    err = capsys.readouterr().err.strip()
    assert err == f"ERROR: {d}/feats.scp:3: dimension 40, expected 13"
    assert not (out / "feats.scp").exists()

    recipe, d, _ = _kaldi_dir(tmp_path / "b")
    lines = (d / "feats.scp").read_text().splitlines()
    lines[1] = lines[1].split()[0] + " mfcc/raw_mfcc_train.ark:99999999"
    (d / "feats.scp").write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit):
        import_feats.main(["--data-dir", str(d), "--out-dir", str(out), "--path-root", str(recipe)])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ERROR: {d}/feats.scp:2: cannot read features of 'spk1-utt1': no Kaldi matrix at ")


def test_import_kaldi_an4(shared_data, tmp_path):
    src = shared_data / "an4_micro" / "kaldi_an4"
    out = tmp_path / "dump"
    # feats.scp paths are relative to data/an4_micro/, as they were where Kaldi ran
    import_feats.main(["--data-dir", str(src), "--out-dir", str(out), "--path-root", str(src.parent)])
    orig = read_table(src / "feats.scp")
    cwd = os.getcwd()
    os.chdir(src.parent)
    try:
        ref = {u: kaldiio.load_mat(v) for u, v in orig.items()}
    finally:
        os.chdir(cwd)
    got = dict(kaldiio.load_scp(str(out / "feats.scp")))
    assert list(got) == list(orig) and len(got) == 20
    for u in ref:
        assert got[u].shape[1] == 13
        np.testing.assert_array_equal(got[u], ref[u])
    allf = np.concatenate(list(ref.values())).astype(np.float64)
    stats = kaldiio.load_mat(str(out / "cmvn.ark"))
    assert stats[0, -1] == len(allf)
    np.testing.assert_allclose(stats[0, :-1] / len(allf), allf.mean(0), rtol=1e-6)
    assert read_table(out / "utt2num_frames")["fcaw-an406-b"] == str(ref["fcaw-an406-b"].shape[0])
    assert (out / "text").exists()


def test_recipe_stage2_reuses_extracted_features(tmp_path):
    """asr.sh --feats-type extracted: stage 2 imports data/<set>/feats.scp instead of extracting."""
    recipe, d, mats = _kaldi_dir(tmp_path)
    os.symlink(ROOT / "utils", recipe / "utils")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run([str(ROOT / "egs" / "TEMPLATE" / "asr1" / "asr.sh"), "--stage", "2", "--stop-stage", "2",
                        "--feats-type", "extracted", "--train-set", "train", "--valid-set", "train",
                        "--test-sets", "train", "--heldout-set", ""],
                       cwd=recipe, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    dump = recipe / "dump" / "fbank" / "train"
    assert (dump / ".done").exists() and (dump / "cmvn.ark").exists()
    assert len(read_table(dump / "feats.scp")) == len(mats)
    assert (recipe / "data" / "token_list" / "char" / "tokens.txt").exists()
    shutil.rmtree(recipe / "dump")


def test_given_global_cmvn_is_checked_and_used(tmp_path, capsys):
    recipe, d, mats = _kaldi_dir(tmp_path)
    allf = np.concatenate(list(mats.values())).astype(np.float64)
    stats = np.stack([np.append(allf.sum(0), len(allf)), np.append((allf ** 2).sum(0), 0)])
    kaldiio.save_mat(str(tmp_path / "global.ark"), stats)  # ESPnet's key-less data/train/cmvn.ark
    out = tmp_path / "dump"
    import_feats.main(["--data-dir", str(d), "--out-dir", str(out), "--cmvn", str(tmp_path / "global.ark")])
    np.testing.assert_array_equal(kaldiio.load_mat(str(out / "cmvn.ark")), stats)
    assert not (out / "cmvn.scp").exists()
    kaldiio.save_mat(str(tmp_path / "bad.ark"), np.zeros((2, 41)) + 1)
    with pytest.raises(SystemExit):
        import_feats.main(["--data-dir", str(d), "--out-dir", str(out), "--cmvn", str(tmp_path / "bad.ark")])
    assert capsys.readouterr().err.strip() == \
        f"ERROR: {tmp_path}/bad.ark: CMVN stats of dimension 40, features have 13"
