"""Fbank features: agreement with Kaldi (kaldi-native-fbank), batched == per utterance, parallel
stage 2 with resumable jobs, sample-rate handling and speed perturbation."""

import os

import kaldi_native_fbank as knf
import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from asr_gr.bin import compute_fbank
from asr_gr.data.kaldi_dir import read_table, validate_data_dir
from asr_gr.features import fbank as fbank_mod
from asr_gr.features.fbank import FbankConfig, compute_fbank_dir
from asr_gr.features.perturb import speed_perturb, speed_perturb_data_dir

SR = 16000


def speechlike(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """Voiced-speech-like audio: a harmonic source with a moving pitch, syllable-rate amplitude
    envelope, two formant-like resonances and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = 110 + 40 * rng.random() + 25 * np.sin(2 * np.pi * (2 + rng.random()) * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formants = rng.uniform([400, 1200], [900, 2500])
    src = np.zeros(n)
    for k in range(1, 40):
        fk = k * f0.mean()
        gain = sum(1 / (1 + ((fk - f) / 150) ** 2) for f in formants) / k ** 0.5
        src += gain * np.sin(k * phase)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t + rng.random() * 6)
    x = src * env
    x = 0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(n)
    return x.astype(np.float32)


def kaldi_fbank(samples: np.ndarray, num_bins: int = 80) -> np.ndarray:
    """Kaldi's compute-fbank-feats (C++ port: kaldi-native-fbank) with dither 0."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = SR
    opts.mel_opts.num_bins = num_bins
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(SR, (samples.astype(np.float64) * 32768.0).tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)], dtype=np.float32)


def test_matches_kaldi_on_synthetic_audio():
    cfg = FbankConfig()
    for seed, secs in enumerate([0.4, 1.0, 2.345]):
        x = speechlike(secs, seed)
        ours, ref = cfg.compute(x), kaldi_fbank(x)
        assert ours.shape == ref.shape == (1 + (len(x) - 400) // 160, 80)
        assert np.abs(ours - ref).max() <= 1e-3


def test_matches_kaldi_on_real_speech(shared_data):
    wavs = sorted((shared_data / "an4_micro" / "an4" / "wav").rglob("*.wav"))
    assert len(wavs) == 40
    cfg = FbankConfig(num_mel_bins=40)
    batch = [sf.read(w, dtype="float32")[0] for w in wavs]
    worst = 0.0
    for x, ours in zip(batch, cfg.compute_batch(batch)):
        ref = kaldi_fbank(x, 40)
        assert ours.shape == ref.shape
        worst = max(worst, float(np.abs(ours - ref).max()))
    assert worst <= 1e-3


def test_batched_equals_per_utterance(monkeypatch):
    cfg = FbankConfig()
    # lengths: odd ones, exactly one window, shorter than a window (no frames), a multiple of the shift
    lengths = [16001, 400, 399, 3200, 5555, 160 * 77, 401, 12345]
    batch = [speechlike(n / SR, i) for i, n in enumerate(lengths)]
    monkeypatch.setattr(fbank_mod, "BLOCK_SECONDS", 1.0)  # several blocks, as in a long chunk
    batched = cfg.compute_batch(batch)
    for x, b in zip(batch, batched):
        single = cfg.compute(x)
        assert b.shape == single.shape == (cfg.num_frames(len(x)), 80)
        np.testing.assert_allclose(b, single, atol=1e-5)
    # an utterance longer than a block is cut at frame boundaries: the same frames
    long = speechlike(3.3, 9)
    np.testing.assert_allclose(np.concatenate(cfg.compute_batch([long[:16000], long])[1:]),
                               kaldi_fbank(long), atol=1e-3)
    assert cfg.compute_batch([long])[0].shape[0] == cfg.num_frames(len(long))
    # and equal to torchaudio's reference implementation of Kaldi's fbank
    import torchaudio.compliance.kaldi as kaldi
    ref = kaldi.fbank(torch.from_numpy(batch[0]).unsqueeze(0) * 32768.0, num_mel_bins=80, dither=0.0,
                      energy_floor=0.0).numpy()
    assert np.abs(batched[0] - ref).max() <= 1e-3


def _data_dir(tmp_path, n=6, sr=SR, name="data"):
    d = tmp_path / name
    d.mkdir()
    wav, text, u2s = [], [], []
    for i in range(n):
        p = tmp_path / f"{name}-u{i}.wav"
        sf.write(p, speechlike(0.5 + 0.1 * i, i, sr), sr)
        utt, spk = f"s{i % 2}-u{i}", f"s{i % 2}"
        wav.append(f"{utt} {p}")
        text.append(f"{utt} HELLO")
        u2s.append(f"{utt} {spk}")
    for fname, rows in (("wav.scp", wav), ("text", text), ("utt2spk", u2s)):
        (d / fname).write_text("\n".join(sorted(rows)) + "\n")
    (d / "spk2utt").write_text("".join(f"s{k} " + " ".join(sorted(f"s{k}-u{i}" for i in range(n) if i % 2 == k))
                                       + "\n" for k in range(2)))
    return d


def test_parallel_jobs_match_one_job_and_rerun_redoes_only_the_failed_job(tmp_path, capsys):
    d = _data_dir(tmp_path)
    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(tmp_path / "one")])
    one = dict(kaldiio.load_scp(str(tmp_path / "one" / "feats.scp")))

    # Job 2 of 2 fails (its last wav is unreadable): no feats.scp; job 1's results are kept.
    bad = tmp_path / "data-u5.wav"
    good = bad.read_bytes()
    bad.write_bytes(b"not audio at all" * 20)
    out = tmp_path / "two"
    with pytest.raises(SystemExit):
        compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out), "--nj", "2"])
    assert "wav.scp:6: cannot read audio file" in capsys.readouterr().err
    assert not (out / "feats.scp").exists()
    # the first failure ends the run (job 1 is stopped unless it finished first); a failed part leaves nothing
    assert not (out / "split" / "feats.2.scp").exists()
    # the jobs are the parts of utils/split_data.sh --per-utt: 3 + 3 utterances in C order
    parts = [list(read_table(d / "split2utt" / str(j) / "wav.scp")) for j in (1, 2)]
    assert parts == [sorted(one)[:3], sorted(one)[3:]]
    ark1 = out / "split" / "feats.1.ark"
    finished = (out / "split" / "feats.1.scp").exists()
    if finished:
        assert list(read_table(out / "split" / "feats.1.scp")) == parts[0]
        stamp = ark1.stat().st_mtime_ns

    bad.write_bytes(good)
    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out), "--nj", "2", "--cmvn"])
    if finished:
        assert ark1.stat().st_mtime_ns == stamp  # a finished job is not redone
    scp = read_table(out / "feats.scp")
    assert list(scp) == list(one)
    assert all(os.path.isabs(v.rsplit(":", 1)[0]) for v in scp.values())
    two = dict(kaldiio.load_scp(str(out / "feats.scp")))
    for utt in one:
        np.testing.assert_allclose(two[utt], one[utt], atol=1e-5)
    u2n = read_table(out / "utt2num_frames")
    assert {u: int(n) for u, n in u2n.items()} == {u: m.shape[0] for u, m in one.items()}
    assert (out / "cmvn.ark").exists() and (out / "text").exists()

    # another --nj redoes the jobs and leaves no arks of the old split behind
    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out), "--nj", "1"])
    assert sorted(p.name for p in (out / "split").glob("*.ark")) == ["feats.1.ark"]
    assert list(kaldiio.load_scp(str(out / "feats.scp"))) == list(one)


def test_unwritable_split_dir_is_a_one_line_error(tmp_path, capsys):
    d = _data_dir(tmp_path, n=4)
    (d / "split2utt").write_text("not a directory\n")  # as a stray file (or a read-only dir) would
    with pytest.raises(SystemExit):
        compute_fbank.main(["--data-dir", str(d), "--out-dir", str(tmp_path / "dump"), "--nj", "2"])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ERROR: {d}/split2utt") and ": Not a directory" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "dump" / "feats.scp").exists()


def test_sample_rate_mismatch_is_an_error_unless_resampled(tmp_path, capsys):
    d = _data_dir(tmp_path, n=2, sr=8000)
    out = tmp_path / "dump"
    with pytest.raises(SystemExit):
        compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert "wav.scp:1: " in err and "is 8000 Hz; expected 16000 Hz" in err
    assert not (out / "feats.scp").exists()
    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out), "--resample", "true"])
    frames = read_table(out / "utt2num_frames")
    assert int(frames["s0-u0"]) == FbankConfig().num_frames(8000)  # 0.5 s at 16 kHz


def test_too_short_utterance_names_its_line(tmp_path):
    d = _data_dir(tmp_path, n=2)
    sf.write(tmp_path / "data-u1.wav", np.zeros(300, dtype=np.float32), SR)
    with pytest.raises(Exception) as e:
        compute_fbank_dir(d, tmp_path / "dump")
    assert str(e.value) == f"{d}/wav.scp:2: utterance 's1-u1' is shorter than one frame (25 ms)"
    assert not (tmp_path / "dump" / "feats.scp").exists()


def test_speed_perturbation_changes_tempo_and_pitch(tmp_path):
    sine = np.sin(2 * np.pi * 200 * np.arange(SR) / SR).astype(np.float32)
    for f in (0.9, 1.1):
        y = speed_perturb(sine, f)
        assert abs(len(y) - SR / f) <= 1
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        peak_hz = np.argmax(spec) * SR / len(y)
        assert abs(peak_hz - 200 * f) < 2

    d = _data_dir(tmp_path, n=4)
    out = speed_perturb_data_dir(d, tmp_path / "sp", [0.9, 1.0, 1.1])
    assert validate_data_dir(out) == []
    u2s = read_table(out / "utt2spk")
    assert len(u2s) == 12
    assert u2s["sp0.9-s0-u0"] == "sp0.9-s0" and u2s["s0-u0"] == "s0" and u2s["sp1.1-s1-u3"] == "sp1.1-s1"
    assert read_table(out / "utt2spkid")["sp0.9-s0-u0"] == "s0"  # the classifier's speaker is the person
    assert read_table(out / "text")["sp1.1-s0-u2"] == "HELLO"
    x, _ = sf.read(read_table(out / "wav.scp")["sp0.9-s0-u0"])
    assert abs(len(x) - 0.5 * SR / 0.9) <= 1

    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(tmp_path / "dump"),
                        "--speed-perturb", "0.9 1.0 1.1"])
    assert len(read_table(tmp_path / "dump" / "feats.scp")) == 12
    assert read_table(tmp_path / "dump" / "utt2spk")["sp1.1-s1-u1"] == "sp1.1-s1"
