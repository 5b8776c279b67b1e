"""The paper's training matrix: semi-supervised batches, speaker-head poolings, schedules, tokens,
n-best averaging."""

import json

import pytest
import torch

from asr_gr.config import resolve
from asr_gr.data.dataset import MixedBucketSampler
from asr_gr.models.speaker import SpeakerClassifier
from asr_gr.text.tokenizer import load_tokenizer, train_sentencepiece
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from asr_gr.utils import ConfigError
from tiny_data import TINY_CONFIG, WORDS, make_dump, make_setup


def _cfg(**over):
    return resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, **over}.items()])


def test_mixed_sampler_interleaves_at_the_ratio():
    s = MixedBucketSampler([10] * 40, [10] * 12, batch_frames=40, ratio=0.5, seed=1)
    order = s.order()
    extra = [b for b in order if b[0] >= 40]
    assert len(order) == s.batches_per_epoch == 10 + 5 and len(extra) == 5
    assert sorted(i for b in order if b[0] < 40 for i in b) == list(range(40))  # every main utt once
    assert [i for i, b in enumerate(order) if b[0] >= 40] == [2, 5, 8, 11, 14]  # one after every 2


def test_mixed_sampler_default_sees_every_untranscribed_utterance_once_per_epoch():
    # 30 untranscribed utterances (8 batches) beside 10 transcribed batches: no cycling of a small set
    s = MixedBucketSampler([10] * 40, [10] * 30, batch_frames=40, ratio=None, seed=1)
    order = s.order()
    extra = [i for b in order if b[0] >= 40 for i in b]
    assert sorted(extra) == list(range(40, 70))  # each untranscribed utterance exactly once
    assert len(order) == s.batches_per_epoch == 10 + 8
    positions = [i for i, b in enumerate(order) if b[0] >= 40]
    assert max(b - a for a, b in zip(positions, positions[1:])) <= 3  # spread evenly, not bunched


def test_warmup_longer_than_the_run_is_warned(tmp_path, caplog):
    paths = make_setup(tmp_path / "data")
    with caplog.at_level("WARNING"):
        Trainer(_cfg(max_epochs=1, warmup_steps=1000), tmp_path / "exp", progress=False, **paths)
    assert any("warmup_steps=1000 is not shorter than the whole run" in r.message for r in caplog.records)


def test_untranscribed_batches_add_only_the_speaker_loss(tmp_path, monkeypatch):
    paths = make_setup(tmp_path / "data")
    untr = make_dump(tmp_path / "data", "untr", n_spk=2, utts_per_spk=6, seed=5, prefix="new")
    (untr / "text").unlink()
    t = Trainer(_cfg(max_epochs=1), tmp_path / "exp", untranscribed_dir=untr, progress=False, **paths)
    assert sorted(t.spk2id) == ["new0", "new1", "spk0", "spk1", "spk2"]
    seen = []
    real = t.model.forward

    def spy(feats, feat_lens, ys, y_lens, spk, progress=0.0):
        loss, stats = real(feats, feat_lens, ys, y_lens, spk, progress)
        seen.append((bool((y_lens > 0).any()), stats))
        return loss, stats

    monkeypatch.setattr(t.model, "forward", spy)
    t.run()
    untr_batches = [st for has_text, st in seen if not has_text]
    assert untr_batches and all("loss_ctc" not in st and st["n_spk"] > 0 for st in untr_batches)
    assert t.step == t.steps_per_epoch > len(t.sampler.batches)
    line = json.loads((tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["train_loss_ctc"] > 0  # averaged over transcribed batches only


def test_untranscribed_speakers_classes_are_masked_when_scoring_training_speakers(tmp_path):
    from asr_gr.inference import load_trained, speaker_accuracy

    paths = make_setup(tmp_path / "data")
    untr = make_dump(tmp_path / "data", "untr", n_spk=2, utts_per_spk=6, seed=5, prefix="new")
    (untr / "text").unlink()
    exp = tmp_path / "exp"
    t = Trainer(_cfg(max_epochs=1), exp, untranscribed_dir=untr, progress=False, **paths)
    t.write_setup({"token_list": str(paths["token_list"]), "cmvn": str(paths["cmvn_path"])})
    t.run()
    assert (exp / "spk_list_untranscribed.txt").read_text() == "new0\nnew1\n"
    line = json.loads((exp / "metrics.jsonl").read_text().splitlines()[-1])
    assert "heldout_acc_spk" in line and "heldout_acc_spk_all_classes" in line

    # stage 4 scores the head on training speakers the same way: 3 classes, chance 33 %
    from asr_gr.bin import decode
    decode.main(["--exp-dir", str(exp), "--data-dir", str(paths["train_dir"]), "--out-dir", str(tmp_path / "dec"),
                 "--checkpoint", "checkpoint.pt"])
    info = json.loads((tmp_path / "dec" / "spk_acc.json").read_text())
    assert info["num_classes"] == 3 and info["chance"] == 33.33 and info["masked_untranscribed_classes"] == 2
    assert {"acc_spk", "acc_spk_all_classes"} <= set(info)

    system = load_trained(exp, "checkpoint.pt")
    model, spk2id, extra = system.model, system.spk2id, system.untranscribed
    assert extra == [spk2id["new0"], spk2id["new1"]]
    masked, _ = speaker_accuracy(model, t.heldout_set, 600, exclude=extra)
    with torch.no_grad():  # a head that always answers "new0" ...
        model.aux_head.classifier.mlp[-1].bias[spk2id["new0"]] += 1e4
    biased_masked, biased_all = speaker_accuracy(model, t.heldout_set, 600, exclude=extra)
    assert biased_all == 0.0
    # ... scores as before once the untranscribed classes are masked
    assert biased_masked == masked


def test_untranscribed_set_needs_a_speaker_head(tmp_path):
    paths = make_setup(tmp_path / "data")
    with pytest.raises(ConfigError, match="needs --aux mtl or adversarial"):
        Trainer(_cfg(aux="none"), tmp_path / "exp", untranscribed_dir=paths["train_dir"], progress=False,
                **paths)


@pytest.mark.parametrize("pooling", ["mean", "stats", "frame"])
def test_speaker_poolings_learn_an_easy_task(pooling):
    torch.manual_seed(0)
    clf = SpeakerClassifier(4, 3, hidden=16, pooling=pooling, dropout=0.0)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    spk = torch.tensor([0, 1, 2] * 4)
    x = torch.randn(12, 20, 4) * 0.3 + torch.nn.functional.one_hot(spk, 4)[:, None, :].float()
    lens = torch.full((12,), 20)
    for _ in range(60):
        loss, acc = clf.loss(x, lens, spk)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert acc == 1.0 and (clf(x, lens).argmax(-1) == spk).all()


def test_nbest_average_and_noam_and_sentencepiece(tmp_path):
    paths = make_setup(tmp_path / "data")
    model = train_sentencepiece([" ".join(WORDS)] * 20 + WORDS * 5, tmp_path / "bpe", 20, "bpe")
    paths["token_list"] = model
    t = Trainer(_cfg(max_epochs=3, nbest_average=2, scheduler="noam", optim="adam"), tmp_path / "exp",
                progress=False, **paths)
    assert len(t.tokenizer) == len(load_tokenizer(model)) and t.tokenizer.tokens[0] == "<blank>"
    summary = t.run()
    avg = torch.load(tmp_path / "exp" / "avg2.pt", weights_only=True)
    e1, e2 = (torch.load(tmp_path / "exp" / f"epoch{e}.pt", weights_only=True) for e in summary["avg2_epochs"])
    k = next(k for k in avg if torch.is_floating_point(avg[k]))
    assert torch.allclose(avg[k], (e1[k] + e2[k]) / 2)
    with pytest.raises(ConfigError, match="unknown schedule 'step'"):
        Trainer(_cfg(scheduler="step"), tmp_path / "exp2", progress=False, **paths)
