"""CMVN stats in Kaldi's layout: global and per speaker, equal to numpy's mean/variance, and readable
back through kaldiio as Kaldi's compute-cmvn-stats output is."""

import kaldiio
import numpy as np
import pytest

from asr_gr.bin import compute_cmvn
from asr_gr.features.cmvn import CMVN, SpeakerCMVN, load_cmvn, load_spk_cmvn

SPK = {"a": ["a-1", "a-2", "a-3"], "b": ["b-1", "b-2"]}


def _feats(tmp_path):
    rng = np.random.default_rng(0)
    mats = {}
    for spk, utts in SPK.items():
        shift = 5.0 if spk == "a" else -3.0
        for u in utts:
            mats[u] = (shift + rng.standard_normal((int(rng.integers(20, 60)), 13)) * (2 if spk == "a" else 1)
                       ).astype(np.float32)
    scp = tmp_path / "feats.scp"
    kaldiio.save_ark(str(tmp_path / "feats.ark"), mats, scp=str(scp))
    (tmp_path / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in SPK.items()))
    return mats, scp


def test_global_stats_equal_numpy(tmp_path):
    mats, scp = _feats(tmp_path)
    compute_cmvn.main(["--feats-scp", str(scp), "--out", str(tmp_path / "cmvn.ark")])
    stats = kaldiio.load_mat(str(tmp_path / "cmvn.ark"))  # key-less 2 x (D+1) matrix
    allf = np.concatenate(list(mats.values())).astype(np.float64)
    assert stats.shape == (2, 14) and stats[0, -1] == len(allf)
    np.testing.assert_allclose(stats[0, :-1] / stats[0, -1], allf.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats[1, :-1] / stats[0, -1] - (stats[0, :-1] / stats[0, -1]) ** 2,
                               allf.var(0), rtol=1e-8)
    normed = CMVN(stats)(allf.astype(np.float32))
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-4)


def test_per_speaker_stats_round_trip_and_apply(tmp_path):
    mats, scp = _feats(tmp_path)
    out = tmp_path / "cmvn" / "cmvn.ark"
    compute_cmvn.main(["--feats-scp", str(scp), "--spk2utt", str(tmp_path / "spk2utt"), "--out", str(out)])
    # what Kaldi's apply-cmvn / kaldiio would read: an scp keyed by speaker, and the ark itself
    by_scp = dict(kaldiio.load_scp(str(out.with_suffix(".scp"))))
    by_ark = dict(kaldiio.load_ark(str(out)))
    assert sorted(by_scp) == sorted(by_ark) == ["a", "b"]
    for spk, utts in SPK.items():
        f = np.concatenate([mats[u] for u in utts]).astype(np.float64)
        np.testing.assert_array_equal(by_scp[spk], by_ark[spk])
        st = by_scp[spk]
        assert st[0, -1] == len(f)
        np.testing.assert_allclose(st[0, :-1] / len(f), f.mean(0), rtol=1e-10)
        np.testing.assert_allclose(st[1, :-1] / len(f), (f ** 2).mean(0), rtol=1e-10)
    # global stats are the sum of the speakers'
    np.testing.assert_allclose(load_cmvn(out.with_suffix(".scp")), by_scp["a"] + by_scp["b"])

    utt2spk = {u: s for s, us in SPK.items() for u in us}
    cmvn = SpeakerCMVN.from_files(out.with_suffix(".scp"), utt2spk)
    for spk, utts in SPK.items():
        normed = np.concatenate([cmvn(mats[u], u) for u in utts])
        np.testing.assert_allclose(normed.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(normed.std(0), 1, atol=1e-3)
    assert load_spk_cmvn(out.with_suffix(".scp"))["b"].shape == (2, 14)


def test_speaker_without_features_is_one_line_error(tmp_path, capsys):
    _, scp = _feats(tmp_path)
    (tmp_path / "spk2utt").write_text("a a-1\nc c-9\n")
    with pytest.raises(SystemExit):
        compute_cmvn.main(["--feats-scp", str(scp), "--spk2utt", str(tmp_path / "spk2utt"),
                           "--out", str(tmp_path / "cmvn.ark")])
    err = capsys.readouterr().err.strip()
    assert err == f"ERROR: {tmp_path}/spk2utt:2: speaker 'c' has no utterance in {scp}"
    assert not (tmp_path / "cmvn.ark").exists() and not (tmp_path / "cmvn.scp").exists()
