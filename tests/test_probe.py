"""Speaker probing: splits keep speakers on both sides; a probe finds speaker identity where it is."""

import torch

from asr_gr.analysis.probe import probe, split_by_speaker, train_probe
from asr_gr.bin import probe as probe_bin
from asr_gr.config import resolve
from asr_gr.data.dataset import FeatureDataset
from asr_gr.features.cmvn import CMVN
from asr_gr.models.asr_model import build_model
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from tiny_data import TINY_CONFIG, make_setup


def test_split_keeps_every_speaker_on_both_sides():
    utts = [f"s{i % 3}-{i}" for i in range(12)] + ["lonely-1"]
    spk = {u: u.split("-")[0] for u in utts}
    tr, te = split_by_speaker(utts, spk, test_fraction=0.25, seed=1)
    assert not set(tr) & set(te) and len(tr) + len(te) == 12  # the one-utterance speaker is dropped
    assert {spk[utts[i]] for i in tr} == {spk[utts[i]] for i in te} == {"s0", "s1", "s2"}


def test_probe_accuracy_tracks_the_information_present():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(10)
    informative = torch.randn(40, 8, generator=g) * 0.5 + torch.nn.functional.one_hot(y, 8).float() * 2
    noise = torch.randn(40, 8, generator=g)
    tr, te = list(range(0, 40, 2)), list(range(1, 40, 2))
    assert train_probe(informative[tr], y[tr], informative[te], y[te], 4, "linear") >= 90.0
    assert train_probe(noise[tr], y[tr], noise[te], y[te], 4, "mlp") <= 60.0


def test_probe_on_a_trained_model_and_the_cli(tmp_path, capsys):
    paths = make_setup(tmp_path / "data")
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, "max_epochs": 1}.items()])
    t = Trainer(cfg, tmp_path / "exp", progress=False, **paths)
    t.write_setup({"token_list": str(paths["token_list"]), "cmvn": str(paths["cmvn_path"])})
    t.run()
    ds = FeatureDataset(paths["train_dir"], cmvn=CMVN.from_file(paths["cmvn_path"]))
    rows = probe(build_model(cfg, 13, len(t.tokenizer), 3), [ds], epochs=100)
    assert [r.layer for r in rows] == [0, 1, 2] and rows[0].dim == 2 * 13  # mean and std
    assert rows[0].linear_acc > rows[0].chance  # the tiny data's speakers differ in their mean
    probe_bin.main(["--exp-dir", str(tmp_path / "exp"), "--data-dir", str(paths["train_dir"]), "--epochs", "50"])
    assert (tmp_path / "exp" / "probe" / "probe.png").stat().st_size > 1000
    assert probe_bin.read_tsv(tmp_path / "exp" / "probe" / "probe.tsv")[2].layer == 2
    probe_bin.main(["--overlay", str(tmp_path / "exp"), str(tmp_path / "exp"), "--out", str(tmp_path / "o.png")])
    assert (tmp_path / "o.png").exists()
