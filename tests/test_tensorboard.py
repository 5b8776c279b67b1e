"""TensorBoard event files: what training and the probe write, read back as TensorBoard reads them."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import asr_gr.tb
from asr_gr.config import resolve
from asr_gr.tb import log_probe, probe_rows_from_tsv
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from tiny_data import TINY_CONFIG, make_setup


def _events(run_dir):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return acc


def _trainer(tmp_path, exp="exp", **over):
    data = tmp_path / "data"
    paths = make_setup(data) if not data.exists() else {
        "train_dir": data / "train", "valid_dir": data / "dev", "heldout_dir": data / "train",
        "token_list": data / "tokens.txt", "cmvn_path": data / "cmvn.ark"}
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, **over}.items()])
    return Trainer(cfg, tmp_path / exp, progress=False, **paths)


def _scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_training_writes_step_and_epoch_scalars(tmp_path):
    t = _trainer(tmp_path)
    t.run()
    acc = _events(tmp_path / "exp" / "tensorboard" / "train")
    tags = set(acc.Tags()["scalars"])
    step_tags = {f"train/{k}" for k in ("loss", "loss_ctc", "loss_spk", "acc_spk", "lambda", "lr")}
    epoch_tags = {"valid/loss_ctc", "valid/cer", "valid/wer", "heldout/acc_spk", "train_epoch/loss_ctc"}
    assert step_tags | epoch_tags <= tags, tags
    assert [s for s, _ in _scalars(acc, "train/loss")] == list(range(1, t.step + 1))
    # Epoch scalars sit at the global step where each epoch ended, and agree with metrics.jsonl.
    n = t.steps_per_epoch
    assert [s for s, _ in _scalars(acc, "valid/cer")] == [n, 2 * n]
    import json
    metrics = [json.loads(x) for x in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    assert [v for _, v in _scalars(acc, "valid/cer")] == pytest.approx([m["valid_cer"] for m in metrics])
    assert all(0 <= m["valid_wer"] for m in metrics)
    assert {v for _, v in _scalars(acc, "train/lambda")} == {1.0}  # adversarial, constant schedule, default λ


def test_a_resumed_run_continues_the_curves_without_folding_back(tmp_path, monkeypatch):
    ref = _trainer(tmp_path, "ref", save_every_steps=2)
    ref.run()
    ref_loss = _scalars(_events(tmp_path / "ref" / "tensorboard" / "train"), "train/loss")

    # Killed after step 5, i.e. after the checkpoint of step 4: step 5 is in the event file, not in
    # the checkpoint, and the rerun does step 5 again.
    real_step = asr_gr.tb.TrainBoard.step

    def step_then_die(self, step, stats, lr):
        real_step(self, step, stats, lr)
        if step == 5:
            self.writer.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(asr_gr.tb.TrainBoard, "step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        _trainer(tmp_path, "cut", save_every_steps=2).run()
    monkeypatch.setattr(asr_gr.tb.TrainBoard, "step", real_step)
    resumed = _trainer(tmp_path, "cut", save_every_steps=2)
    resumed.run()
    assert resumed.step == ref.step
    cut_loss = _scalars(_events(tmp_path / "cut" / "tensorboard" / "train"), "train/loss")
    # One point per step, in order, and the same values as the uninterrupted run (bit-exact resume).
    assert [s for s, _ in cut_loss] == list(range(1, ref.step + 1))
    assert cut_loss == ref_loss


def test_only_rank_0_writes(tmp_path, monkeypatch):
    t = _trainer(tmp_path)
    monkeypatch.setattr(t.dist, "rank", 1)
    t.run()
    assert not (tmp_path / "exp" / "tensorboard").exists()


def test_log_probe_writes_one_curve_per_metric_and_replaces_a_rerun(tmp_path):
    rows = [{"layer": 0, "dim": 13, "linear_acc": 40.0, "mlp_acc": 45.0, "chance": 10.0},
            {"layer": 1, "dim": 16, "linear_acc": 60.0, "mlp_acc": 62.0, "chance": 10.0},
            {"layer": 2, "dim": 16, "linear_acc": 55.0, "mlp_acc": None, "chance": 10.0}]
    run = log_probe(tmp_path / "exp", "heldout", rows)
    acc = _events(run)
    assert run == tmp_path / "exp" / "tensorboard" / "probe_heldout"
    assert _scalars(acc, "probe/linear_acc") == [(0, 40.0), (1, 60.0), (2, 55.0)]
    assert [s for s, _ in _scalars(acc, "probe/mlp_acc")] == [0, 1]  # None: no point
    # A rerun replaces the curve: one value per layer, the new ones.
    log_probe(tmp_path / "exp", "heldout", [dict(r, linear_acc=r["linear_acc"] + 1) for r in rows])
    assert _scalars(_events(run), "probe/linear_acc") == [(0, 41.0), (1, 61.0), (2, 56.0)]
    assert len(list(run.iterdir())) == 1


def test_probe_rows_from_a_tsv_with_a_probe_kind_column(tmp_path):
    tsv = tmp_path / "probe.tsv"
    tsv.write_text("layer\tprobe\tacc\teer\n0\tlinear\t40.0\tn/a\n0\tmlp\t45.0\t20.0\n1\tlinear\t60.0\t10.0\n")
    acc = _events(log_probe(tmp_path / "exp", "probe", probe_rows_from_tsv(tsv)))
    assert _scalars(acc, "probe/acc/linear") == [(0, 40.0), (1, 60.0)]
    assert _scalars(acc, "probe/acc/mlp") == [(0, 45.0)]
    assert _scalars(acc, "probe/eer/linear") == [(1, 10.0)]
