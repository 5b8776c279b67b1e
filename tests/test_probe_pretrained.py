"""Probing pretrained torchaudio encoders (wav2vec 2.0, HuBERT, WavLM) from local checkpoints: tiny models
built here (random weights), saved in the accepted formats (plain state_dict + JSON/YAML config, a dict
with its config, a published bundle's layout), probed on waveforms of Kaldi data dirs made here (segments,
resampling), the layer count, independence from the other utterances, one-line errors, and --compare
with our models."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_gr.analysis import pretrained as PT
from asr_gr.analysis import probe as P
from asr_gr.bin import probe as probe_bin
from asr_gr.data.kaldi_dir import read_table, write_data_dir, write_table

COMMON = ["--epochs", "30", "--num-samples", "200", "--num-threads", "1"]
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 2, 2)]  # 25 ms receptive field, 10 ms hop at 16 kHz
BASE = dict(extractor_conv_layer_config=CONV, extractor_conv_bias=False, encoder_embed_dim=32,
            encoder_projection_dropout=0.1, encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4,
            encoder_num_heads=4, encoder_attention_dropout=0.1, encoder_ff_interm_features=64,
            encoder_ff_interm_dropout=0.0, encoder_dropout=0.1, encoder_layer_drop=0.05, aux_num_out=None)
# wav2vec2_base-shaped (group-norm CNN, post-LN), a HuBERT-large-shaped one (layer-norm CNN, pre-LN, on
# normalised waveforms) and WavLM base-shaped, all tiny
TINY = {"wav2vec2": dict(BASE, extractor_mode="group_norm", encoder_num_layers=3, encoder_layer_norm_first=False),
        "hubert": dict(BASE, extractor_mode="layer_norm", encoder_num_layers=2, encoder_layer_norm_first=True),
        "wavlm": dict(BASE, extractor_mode="group_norm", encoder_num_layers=2, encoder_layer_norm_first=False,
                      encoder_num_buckets=16, encoder_max_distance=64)}


@pytest.fixture(autouse=True)
def one_thread():
    """Many tiny forward passes: one thread is many times faster on a shared machine (--num-threads 1
    does the same in the CLI runs); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(arch, seed=0):
    from torchaudio.models import wav2vec2_model, wavlm_model

    torch.manual_seed(seed)
    return (wavlm_model if arch == "wavlm" else wav2vec2_model)(**TINY[arch]).eval()


def _save(path, arch, **extra):
    """A checkpoint dict {config, state_dict} of a tiny model; hubert as the input-normalising wrapper of
    torchaudio's large bundles writes it (keys model.*)."""
    model = _build(arch)
    if arch == "hubert":
        from torchaudio.pipelines._wav2vec2.utils import _extend_model

        sd = _extend_model(model, normalize_waveform=True).state_dict()
        extra.setdefault("normalize_waveform", True)
    else:
        sd = model.state_dict()
    torch.save({"config": TINY[arch], "state_dict": sd, **extra}, path)
    return path


def _tones(root, name="tones", n_spk=6, per_spk=6, rate=8000, utts=None):
    """A Kaldi data dir of one 8 kHz recording per 'speaker' (a harmonic voice with its own pitch and
    timbre) cut into 0.5 s segments; ``utts``: keep only these."""
    rng = np.random.default_rng(0)
    d = root / name
    wav, u2s, seg = {}, {}, {}
    for s in range(n_spk):
        t = np.arange(int(rate * 0.6 * per_spk)) / rate
        f0 = 110 + 23 * s
        x = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t))) / k ** (0.5 + 0.2 * s)
                for k in range(1, 8))
        rec = f"spk{s}-rec"
        (root / "wav").mkdir(parents=True, exist_ok=True)
        sf.write(root / "wav" / f"{rec}.wav", (0.1 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32), rate)
        wav[rec] = str(root / "wav" / f"{rec}.wav")
        for u in range(per_spk):
            utt = f"spk{s}-{u:02d}"
            if utts is None or utt in utts:
                seg[utt], u2s[utt] = f"{rec} {0.6 * u:.2f} {0.6 * u + 0.5:.2f}", f"spk{s}"
    write_data_dir(d, wav_scp=wav, utt2spk=u2s)
    write_table(d / "segments", seg)
    return d


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return _tones(tmp_path_factory.mktemp("tones"))


@pytest.mark.parametrize("arch", ["wav2vec2", "hubert", "wavlm"])
def test_each_architecture_gives_the_probe_tables_of_its_layers(arch, tones, tmp_path, capsys):
    ckpt = _save(tmp_path / f"{arch}.pt", arch)
    exp = tmp_path / "exp" / f"tiny_{arch}"
    probe_bin.main(COMMON + ["--pretrained", arch, "--pretrained-ckpt", str(ckpt), "--exp-dir", str(exp),
                             "--data-dir", str(tones)])
    d = exp / "probe_tones"
    for f in ("probe.tsv", "probe.png", "per_utt.tsv", "trials.tsv", "probe.json"):
        assert (d / f).exists(), f
    rows = P.read_tsv(d / "probe.tsv")
    n_layers = TINY[arch]["encoder_num_layers"]
    assert [r.layer for r in rows] == list(range(n_layers + 1))  # 0 = CNN output, then every transformer layer
    assert [r.dim for r in rows] == [2 * 16] + [2 * 32] * n_layers  # mean + s.d. pooling
    for r in rows:  # 6 speakers x 6: every figure with its interval
        assert r.linear_ci[0] <= r.linear_acc <= r.linear_ci[1] and r.eer_ci[0] <= r.eer <= r.eer_ci[1]
    meta = json.loads((d / "probe.json").read_text())
    assert meta["model"]["family"] == arch and meta["model"]["layers"] == n_layers + 1
    assert meta["model"]["normalize_waveform"] == (arch == "hubert") and meta["speakers"] == 6
    assert "probe set 'tones': 6 speakers, 24 probe-train / 12 probe-test utterances" in capsys.readouterr().out
    assert min(r.eer for r in rows) < 40.0  # the voices differ in pitch and timbre: even random layers see it


def test_an_utterance_never_depends_on_the_others(tones, tmp_path):
    enc = PT.load_pretrained("wav2vec2", _save(tmp_path / "w.pt", "wav2vec2"))
    utts, layers, spk = PT.pooled_waveform_layers(enc, [tones])
    assert utts == sorted(read_table(tones / "segments")) and spk["spk3-01"] == "spk3"
    half = _tones(tmp_path, "half", utts=set(utts[1::3]))  # the same recordings, a third of the segments
    u2, l2, _ = PT.pooled_waveform_layers(enc, [half])
    idx = [utts.index(u) for u in u2]
    for a, b in zip(layers, l2):
        torch.testing.assert_close(a[idx], b, rtol=0, atol=0)
    # and each is what the model makes of that waveform alone (resampled 8 -> 16 kHz)
    from asr_gr.data.audio import load_audio_file, resample_audio

    x, rate = load_audio_file(tones.parent / "wav" / "spk2-rec.wav")
    seg = resample_audio(x[int(0.6 * rate):int(1.1 * rate)], rate, 16000)
    alone = enc.layer_outputs(torch.from_numpy(seg))
    i = utts.index("spk2-01")
    for layer, out in enumerate(alone):
        torch.testing.assert_close(layers[layer][i, :out.shape[1]], out.mean(0), rtol=1e-5, atol=1e-5)


def test_normalised_waveform_models_ignore_the_input_level(tmp_path):
    enc = PT.load_pretrained("hubert", _save(tmp_path / "h.pt", "hubert"))
    assert enc.normalize_waveform and enc.arch.family == "hubert"
    wave = torch.from_numpy(np.random.default_rng(1).standard_normal(8000).astype(np.float32)) * 0.1
    for a, b in zip(enc.layer_outputs(wave), enc.layer_outputs(wave * 5)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    plain = PT.load_pretrained("wav2vec2", _save(tmp_path / "w.pt", "wav2vec2"))  # trained on raw waveforms: level matters
    assert not torch.allclose(plain.layer_outputs(wave)[-1], plain.layer_outputs(wave * 5)[-1], atol=1e-3)


def test_a_plain_state_dict_of_a_published_architecture(tmp_path):
    """What ``torch.save(torchaudio.pipelines.HUBERT_BASE.get_model().state_dict())`` writes (here with
    constant weights, older weight-norm names and a fine-tuned model's CTC head) loads with
    --pretrained-config naming the bundle in any case; the family's default is its base model."""
    import torchaudio.models

    with torch.device("meta"):  # the factory of the same name as the bundle: the same architecture
        shapes = {k: v.shape for k, v in torchaudio.models.hubert_base().state_dict().items()}
    sd = {k: torch.full(s, 0.01) for k, s in shapes.items()}
    pos = "encoder.transformer.pos_conv_embed.conv."
    sd[pos + "weight_g"] = sd.pop(pos + "parametrizations.weight.original0")
    sd[pos + "weight_v"] = sd.pop(pos + "parametrizations.weight.original1")
    sd["aux.weight"], sd["aux.bias"] = torch.zeros(29, 768), torch.zeros(29)
    torch.save(sd, tmp_path / "hubert_base.pt")
    del sd
    enc = PT.load_pretrained("hubert", tmp_path / "hubert_base.pt", "HuBERT_Base")
    assert (enc.arch.name, enc.num_layers, enc.sample_rate, enc.normalize_waveform) == ("hubert_base", 12, 16000, False)
    assert PT.resolve_arch("hubert").name == "hubert_base"  # the default: the family's base
    assert enc.model.aux is None
    w = enc.model.encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1
    assert float(w.detach().flatten()[0]) == pytest.approx(0.01)
    outs = enc.layer_outputs(torch.zeros(4000))
    assert len(outs) == 13 and outs[0].shape == (12, 512) and outs[12].shape == (12, 768)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_plain_state_dict_with_a_config_file(fmt, tones, tmp_path):
    """The usual case: torch.save(model.state_dict()) and the architecture in a JSON or YAML file."""
    import yaml

    model = _build("wavlm")
    torch.save(model.state_dict(), tmp_path / "wavlm.pt")
    cfg = dict(TINY["wavlm"], extractor_conv_layer_config=[list(x) for x in CONV], normalize_waveform=True)
    del cfg["aux_num_out"]  # optional: the probe drops a CTC head anyway
    path = tmp_path / f"tiny.{fmt}"
    path.write_text(json.dumps(cfg) if fmt == "json" else yaml.safe_dump(cfg))
    exp = tmp_path / "exp"
    probe_bin.main(COMMON + ["--pretrained", "wavlm", "--pretrained-ckpt", str(tmp_path / "wavlm.pt"),
                             "--pretrained-config", str(path), "--exp-dir", str(exp), "--data-dir", str(tones)])
    meta = json.loads((exp / "probe_tones" / "probe.json").read_text())
    assert meta["model"]["arch"] == str(path) and meta["model"]["normalize_waveform"] is True
    assert len(P.read_tsv(exp / "probe_tones" / "probe.tsv")) == 3
    # the weights are the saved ones, untouched
    enc = PT.load_pretrained("wavlm", tmp_path / "wavlm.pt", str(path))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[k], v, rtol=0, atol=0)


def test_every_torchaudio_factory_has_a_bundle_of_its_name():
    """The docs promise that a torchaudio.models factory's name works as --pretrained-config (as the
    bundle of that name), and the bundle's architecture is the factory's."""
    import torchaudio.models as models

    named = PT.named_archs()
    factories = [n for n in dir(models) if n.startswith(PT.FAMILIES) and not n.endswith("_model")
                 and "pretrain" not in n and n not in PT.FAMILIES]
    assert {"wav2vec2_base", "hubert_large", "wavlm_base"} <= set(factories)
    for n in factories:
        assert n in named, n
        family = n.split("_")[0]
        with torch.device("meta"):
            a = {k: v.shape for k, v in getattr(models, n)().state_dict().items()}
            b = {k: v.shape for k, v in PT.resolve_arch(family, n.upper()).build().state_dict().items()}
        assert a == b, n


def _err(capsys, argv):
    with pytest.raises(SystemExit) as e:
        probe_bin.main(argv)
    assert e.value.code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: "), err
    return err[0]


def test_bad_checkpoints_and_archs_are_one_line_errors(tones, tmp_path, capsys):
    run = ["--exp-dir", str(tmp_path / "exp"), "--data-dir", str(tones), *COMMON]
    plain = tmp_path / "plain.pt"
    torch.save(_build("wav2vec2").state_dict(), plain)
    w2v = ["--pretrained", "wav2vec2", "--pretrained-ckpt", str(plain)]
    # a checkpoint that does not match the architecture: the default (the family's base), a named one
    msg = _err(capsys, [*w2v, *run])
    assert msg.startswith(f"ERROR: {plain}: does not fit the wav2vec2 architecture wav2vec2_base "
                          "(12 transformer layers of 768): ") and "of another shape" in msg
    assert "name its architecture with --pretrained-config" in msg
    assert "(24 transformer layers of 1024)" in _err(capsys, [*w2v, "--pretrained-config", "WAV2VEC2_LARGE", *run])
    assert "'wav2vec3' is neither a JSON/YAML file nor a known wav2vec2 architecture (a torchaudio.pipelines " \
        "bundle: " in _err(capsys, [*w2v, "--pretrained-config", "wav2vec3", *run])
    assert "--pretrained-config hubert_base is a hubert architecture, not --pretrained wav2vec2" in \
        _err(capsys, [*w2v, "--pretrained-config", "hubert_base", *run])
    assert "builds a torchaudio Wav2Vec2 model, not --pretrained wavlm's WavLM" in \
        _err(capsys, ["--pretrained", "wavlm", "--pretrained-ckpt", str(plain), "--pretrained-config",
                      "mms_fa", *run])
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**TINY["wav2vec2"], "encoder_layers": 3}))
    assert f"{bad}: unknown key 'encoder_layers' (the keyword arguments of torchaudio.models.wav2vec2_model" in \
        _err(capsys, [*w2v, "--pretrained-config", str(bad), *run])
    bad.write_text(json.dumps({k: v for k, v in TINY["wav2vec2"].items() if k != "encoder_num_heads"}))
    assert "argument(s) of torchaudio.models.wav2vec2_model missing (e.g. 'encoder_num_heads')" in \
        _err(capsys, [*w2v, "--pretrained-config", str(bad), *run])
    assert "config file does not exist" in _err(capsys, [*w2v, "--pretrained-config", str(tmp_path / "no.yaml"), *run])
    ck = _save(tmp_path / "wavlm.pt", "wavlm", family="wavlm")
    assert "--pretrained hubert: the checkpoint says it is a wavlm model" in \
        _err(capsys, ["--pretrained", "hubert", "--pretrained-ckpt", str(ck), *run])
    torch.save({"config": {**TINY["wavlm"], "encoder_num_buckets": 8}, "state_dict": _build("wavlm").state_dict()},
               tmp_path / "bad_cfg.pt")
    assert "does not fit the wavlm architecture checkpoint config (2 transformer layers " \
        "of 32): 1 of another shape" in _err(capsys, ["--pretrained", "wavlm", "--pretrained-ckpt",
                                                     str(tmp_path / "bad_cfg.pt"), *run])
    for name, what in (("notes.pt", "cannot load checkpoint"), ("nothing.pt", "checkpoint does not exist"),
                       ("checkpoint.pt", "is an asr_gr training checkpoint: probe its exp dir with --exp-dir")):
        if name == "notes.pt":
            (tmp_path / name).write_text("not a checkpoint\n")
        elif name == "checkpoint.pt":
            torch.save({"model": {}, "optim": {}}, tmp_path / name)
        assert f"{name}: {what}" in _err(capsys, ["--pretrained", "wavlm", "--pretrained-ckpt", str(tmp_path / name), *run])
    assert "--pretrained needs --pretrained-ckpt FILE" in capsys_err(capsys, ["--pretrained", "wavlm", *run])
    assert "go with --pretrained wav2vec2|hubert|wavlm" in capsys_err(capsys, ["--pretrained-ckpt", str(ck), *run])
    wl = ["--pretrained", "wavlm", "--pretrained-ckpt", str(ck)]
    dump = tmp_path / "dump"  # a dir without wav.scp (e.g. the fbank dump)
    write_data_dir(dump, wav_scp={"a": "/dev/null"}, utt2spk={"spk0-a": "spk0", "spk1-b": "spk1"})
    (dump / "wav.scp").unlink()
    assert "wav.scp: does not exist: a pretrained encoder reads the waveforms" in \
        _err(capsys, [*wl, "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(dump)])
    short = _tones(tmp_path, "short")
    segs = read_table(short / "segments")
    segs["spk0-03"] = "spk0-rec 1.800 1.802"  # 2 ms: shorter than the CNN's receptive field
    write_table(short / "segments", segs)
    assert f"{short / 'segments'}:4: utterance 'spk0-03' is 0.002 s: too short" in \
        _err(capsys, [*wl, "--exp-dir", str(tmp_path / "exp"), "--data-dir", str(short)])


def capsys_err(capsys, argv):
    """argparse's usage error: its last line."""
    with pytest.raises(SystemExit) as e:
        probe_bin.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_compare_pairs_a_pretrained_encoder_with_our_system(tones, tmp_path, capsys):
    """Our model probed on the set's fbank dump, a pretrained one on its waveforms: the same split and
    trials (they depend on the set and the seed only), so --compare pairs them."""
    from asr_gr.bin import compute_fbank
    from asr_gr.data.dataset import FeatureDataset
    from test_probe import _cfg
    from asr_gr.models.asr_model import build_model

    dump = tmp_path / "dump" / "tones"
    compute_fbank.main(["--data-dir", str(tones), "--out-dir", str(dump), "--sample-rate", "8000",
                        "--num-mel-bins", "23", "--no-text"])
    torch.manual_seed(0)
    ours = P.probe(build_model(_cfg(), 23, 10, 3), [FeatureDataset(dump)], epochs=30, num_samples=200)
    P.write_probe_dir(tmp_path / "ours" / "probe_tones", ours)
    ck = _save(tmp_path / "w.pt", "wav2vec2")
    probe_bin.main(COMMON + ["--pretrained", "wav2vec2", "--pretrained-ckpt", str(ck), "--exp-dir", str(tmp_path / "w2v"),
                             "--data-dir", str(tones)])
    for f, k in (("trials.tsv", 4), ("per_utt.tsv", 2)):  # the same trials and test utterances (scores differ)
        a = [x.split("\t")[:k] for x in (tmp_path / "ours" / "probe_tones" / f).read_text().splitlines()[1:]]
        b = [x.split("\t")[:k] for x in (tmp_path / "w2v" / "probe_tones" / f).read_text().splitlines()[1:]]
        assert a == b and len(a) > 10
    capsys.readouterr()
    probe_bin.main(["--compare", str(tmp_path / "ours"), str(tmp_path / "w2v"), "--set", "tones", "--num-samples", "200"])
    md = (tmp_path / "probe_compare_tones.md").read_text()
    assert "## `w2v` − `ours`" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(x.split("|")[1]) for x in table] == [0, 1, 2]  # our tiny model's 3 layers against its first 3
    assert any(x.split("|")[4].strip() != "+0.0 [+0.0, +0.0]" for x in table)  # two models: Δ EER with width
    assert math.isfinite(P.compare_probe_dirs(tmp_path / "ours" / "probe_tones", tmp_path / "w2v" / "probe_tones")[0].eer[1][0])


def test_real_speech(shared_data, tmp_path):
    """FSDD (real 8 kHz speech, 6 speakers): a tiny random WavLM's layers still tell the speakers apart."""
    rec = shared_data / "fsdd" / "recordings"
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    wav = {f"{s}-{digit}": str(rec / f"{digit}_{s}_0.wav") for s in speakers for digit in range(6)}
    d = tmp_path / "fsdd"
    write_data_dir(d, wav_scp=wav, utt2spk={u: u.split("-")[0] for u in wav})
    ck = _save(tmp_path / "wavlm.pt", "wavlm")
    probe_bin.main(COMMON + ["--pretrained", "wavlm", "--pretrained-ckpt", str(ck), "--exp-dir", str(tmp_path / "exp"),
                             "--data-dir", str(d)])
    rows = P.read_tsv(tmp_path / "exp" / "probe_fsdd" / "probe.tsv")
    assert len(rows) == 3 and all(not math.isnan(r.eer_ci[0]) for r in rows)
    assert rows[0].eer_ci[1] < 50.0  # the CNN output of real voices: better than chance, with its interval
