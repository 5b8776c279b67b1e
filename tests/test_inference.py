"""A trained system through asr_gr.inference: Speech2Text gives stage 4's hypotheses from raw audio at
any rate; asr_gr.bin.transcribe; asr.sh --fs resamples in stage 2 and the rate travels to config.yaml."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import copy_recipe_run

from asr_gr.config import load_yaml
from asr_gr.data.kaldi_dir import read_table
from asr_gr.utils import DataError

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _run(recipe, *args):
    p = subprocess.run(["./run.sh", "--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "1",
                        *args], cwd=recipe, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def recipe(mini_synth_master, tmp_path_factory):
    """The tiny mini_synth recipe through stage 4 (and 5) with a system with a speaker head (tiny_mtl):
    this module's own copy of the session's run (conftest.mini_synth_master)."""
    assert mini_synth_master.process.returncode == 0, mini_synth_master.process.stderr[-3000:]
    return copy_recipe_run(mini_synth_master, tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def s2t(recipe):
    from asr_gr.inference import Speech2Text

    return Speech2Text.from_exp(recipe / "exp" / "tiny_mtl", checkpoint="best.pt")


def _wavs(recipe, name="test"):
    wav = read_table(recipe / "data" / name / "wav.scp")
    assert all(os.path.isfile(v) for v in wav.values())  # plain files in this corpus
    return wav


def test_speech2text_gives_stage4_hypotheses_from_the_wav_files(recipe, s2t, tmp_path):
    for name in ("test", "dev"):
        hyp = read_table(recipe / "exp" / "tiny_mtl" / f"decode_{name}_greedy" / "hyp.txt", allow_empty_value=True)
        wavs = _wavs(recipe, name)
        assert set(hyp) == set(wavs)
        assert {u: s2t(wavs[u]).text for u in wavs} == hyp
    # and with stage 4's beam search
    import functools

    from asr_gr.bin import decode
    from asr_gr.decode.beam import beam_search_batch
    from asr_gr.inference import Speech2Text

    exp, out = recipe / "exp" / "tiny_mtl", tmp_path / "beam"
    decode.main(["--exp-dir", str(exp), "--data-dir", str(recipe / "dump" / "fbank" / "test"), "--out-dir", str(out),
                 "--beam-size", "4"])
    beam = Speech2Text.from_exp(exp, decoder=functools.partial(beam_search_batch, beam_size=4))
    assert {u: beam(w).text for u, w in _wavs(recipe).items()} == read_table(out / "hyp.txt", allow_empty_value=True)
    # the same numbers as the dump: stage 2's fbank and stage 4's normalisation
    ds = s2t.system.dataset(recipe / "dump" / "fbank" / "test")
    for i, utt in enumerate(ds.utts):
        assert np.abs(s2t.features(_wavs(recipe)[utt]) - ds[i]["feats"].numpy()).max() < 1e-4


def test_waveform_arrays_any_rate_layers_and_speaker_posteriors(recipe, s2t):
    cfg = load_yaml(recipe / "exp" / "tiny_mtl" / "config.yaml")
    assert cfg["fs"] == 16000 and cfg["frontend"]["num_mel_bins"] == cfg["input_dim"]
    path = next(iter(_wavs(recipe).values()))
    samples, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    ref = s2t(path, layers=True, speaker=True)
    same = s2t(samples, fs=sr, layers=True, speaker=True)
    assert same.text == ref.text and np.array_equal(same.spk_posteriors, ref.spk_posteriors)
    # the file is 16-bit PCM: its int16 samples are the same waveform (int16 arrays are scaled by 1/32768,
    # as soundfile reads them), so the same hypothesis and speaker posteriors
    assert sf.info(path).subtype == "PCM_16"
    pcm = np.round(samples * 32768).astype(np.int16)
    int16 = s2t(pcm, fs=sr, speaker=True)
    assert int16.text == ref.text and np.allclose(int16.spk_posteriors, ref.spk_posteriors, atol=1e-6)

    n_layers = len(s2t.system.model.encoder.layer_dims)
    assert len(ref.layers) == n_layers + 1
    assert ref.layers[0].shape == (ref.num_frames, cfg["input_dim"])
    out_frames = ref.layers[1].shape[0]
    assert out_frames < ref.num_frames  # the encoder subsamples (stride 3)
    for k, dim in enumerate(s2t.system.model.encoder.layer_dims, 1):
        assert ref.layers[k].shape == (out_frames, dim)
    assert ref.spk_posteriors.shape == (cfg["num_speakers"],)
    assert ref.spk_posteriors.sum() == pytest.approx(1.0, abs=1e-5) and ref.speaker in ref.speakers

    # other rates are resampled to the model's 16 kHz (the hypothesis may differ; it is text)
    for rate in (8000, 44100):
        other = AF.resample(torch.from_numpy(samples), 16000, rate).numpy()
        hyp = s2t(other, fs=rate, layers=True)
        assert isinstance(hyp.text, str)
        assert abs(hyp.num_frames - ref.num_frames) <= 1 and hyp.layers[0].shape[1] == cfg["input_dim"]
    with pytest.raises(ValueError, match="needs its sample rate"):
        s2t(samples)
    with pytest.raises(DataError, match="shorter than one frame"):
        s2t(samples[:100], fs=sr)


def test_transcribe_prints_file_tab_text_and_reports_unreadable_files(recipe, tmp_path):
    wavs = _wavs(recipe)
    hyp = read_table(recipe / "exp" / "tiny_mtl" / "decode_test_greedy" / "hyp.txt", allow_empty_value=True)
    utts = sorted(wavs)[:2]
    samples, _ = sf.read(wavs[utts[1]], dtype="float32")
    low = tmp_path / "low.flac"  # the second utterance at 8 kHz, as FLAC
    sf.write(low, AF.resample(torch.from_numpy(samples), 16000, 8000).numpy(), 8000)
    (tmp_path / "notaudio.wav").write_text("hello")
    files = [wavs[utts[0]], str(tmp_path / "missing.wav"), str(low), str(tmp_path / "notaudio.wav")]
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.transcribe", "--exp-dir",
                        str(recipe / "exp" / "tiny_mtl"), *files], env=ENV, capture_output=True, text=True)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == f"{files[0]}\t{hyp[utts[0]]}" and lines[1].startswith(f"{low}\t")
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR:")]
    assert any("missing.wav" in ln and "does not exist" in ln for ln in err)
    assert any("notaudio.wav" in ln and "cannot read audio file" in ln for ln in err)
    assert err[-1] == "ERROR: 2 of 4 files could not be transcribed"
    assert "Traceback" not in p.stderr

    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.transcribe", "--exp-dir",
                        str(recipe / "exp" / "tiny_mtl"), "--fs", "8000", files[0]], env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 1 and "trained on features at 16000 Hz" in p.stderr and not p.stdout


def test_decoding_features_of_another_rate_is_an_error(recipe, tmp_path):
    from asr_gr.bin import compute_fbank, decode

    compute_fbank.main(["--data-dir", str(recipe / "data" / "test"), "--out-dir", str(tmp_path / "d8k"),
                        "--sample-rate", "8000", "--resample", "true"])
    assert json.loads((tmp_path / "d8k" / "fbank.json").read_text())["sample_frequency"] == 8000
    with pytest.raises(SystemExit):
        decode.main(["--exp-dir", str(recipe / "exp" / "tiny_mtl"), "--data-dir", str(tmp_path / "d8k"),
                     "--out-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "hyp.txt").exists()


def test_asr_sh_fs_resamples_in_stage2_and_the_model_records_the_rate(recipe):
    """Last in this module: it replaces the recipe's features with 8 kHz ones."""
    p = _run(recipe, "--stage", "2", "--stop-stage", "3", "--aux", "none", "--fs", "8000", "--tag", "tiny_8k")
    for s in ("train", "dev", "test"):
        info = json.loads((recipe / "dump" / "fbank" / s / "fbank.json").read_text())
        assert info["sample_frequency"] == 8000
        assert "fs=8000" in (recipe / "dump" / "fbank" / s / ".done").read_text()
    assert "is done; skipping" not in p.stderr  # the 16 kHz features were not reused
    cfg = load_yaml(recipe / "exp" / "tiny_8k" / "config.yaml")
    assert cfg["fs"] == 8000
    # the 16 kHz system keeps its own CMVN stats: it still decodes as stage 4 did
    from asr_gr.inference import Speech2Text

    kept = recipe / "exp" / "tiny_mtl" / "cmvn.ark"
    assert load_yaml(recipe / "exp" / "tiny_mtl" / "config.yaml")["cmvn"] == str(kept.resolve())
    hyp = read_table(recipe / "exp" / "tiny_mtl" / "decode_test_greedy" / "hyp.txt", allow_empty_value=True)
    s2t16 = Speech2Text.from_exp(recipe / "exp" / "tiny_mtl")
    assert {u: s2t16(w).text for u, w in _wavs(recipe).items()} == hyp
    # retraining tiny_mtl on the 8 kHz stats would mix two normalisations: refused
    p = subprocess.run(["./run.sh", "--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "1",
                        "--stage", "3", "--stop-stage", "3", "--aux", "mtl"], cwd=recipe, env=ENV,
                       capture_output=True, text=True)
    assert p.returncode != 0 and "the CMVN stats this exp dir was trained with" in p.stderr

    s2t8 = Speech2Text.from_exp(recipe / "exp" / "tiny_8k")
    assert s2t8.fs == 8000
    path = next(iter(_wavs(recipe).values()))  # 16 kHz files are resampled to 8 kHz
    ds = s2t8.system.dataset(recipe / "dump" / "fbank" / "test")
    utt = next(iter(_wavs(recipe)))
    assert np.abs(s2t8.features(path) - ds[ds.utts.index(utt)]["feats"].numpy()).max() < 1e-4
