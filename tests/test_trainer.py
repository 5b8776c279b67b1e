"""Trainer reliability: determinism, exact resume after a kill, non-finite steps, bad checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from asr_gr.config import resolve
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from asr_gr.utils import TrainingError
from tiny_data import TINY_CONFIG, make_setup


def _trainer(tmp_path, exp="exp", **over):
    paths = make_setup(tmp_path / "data") if not (tmp_path / "data").exists() else _paths(tmp_path)
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, **over}.items()])
    return Trainer(cfg, tmp_path / exp, progress=False, **paths)


def _paths(tmp_path):
    r = tmp_path / "data"
    return {"train_dir": r / "train", "valid_dir": r / "dev", "heldout_dir": r / "train",
            "token_list": r / "tokens.txt", "cmvn_path": r / "cmvn.ark"}


def _weights(path):
    return torch.load(path, weights_only=True)


def test_same_seed_gives_bit_identical_checkpoints(tmp_path):
    _trainer(tmp_path, "a").run()
    _trainer(tmp_path, "b").run()
    a, b = _weights(tmp_path / "a" / "epoch2.pt"), _weights(tmp_path / "b" / "epoch2.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_mid_epoch_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    ref = _trainer(tmp_path, "ref", save_every_steps=1)
    ref.run()
    steps = ref.step
    # Interrupt a second run after 3 optimiser steps (mid-epoch 1), as a crash would.
    t = _trainer(tmp_path, "cut", save_every_steps=1)
    real_save = t.save
    calls = {"n": 0}

    def save_then_die(*, epoch_end):
        real_save(epoch_end=epoch_end)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(t, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    resumed = _trainer(tmp_path, "cut", save_every_steps=1)
    resumed.run()
    assert resumed.step == steps
    a, b = _weights(tmp_path / "ref" / "epoch2.pt"), _weights(tmp_path / "cut" / "epoch2.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_9_then_rerun_resumes_with_the_same_step_count(tmp_path):
    paths = make_setup(tmp_path / "data")
    over = {**TINY_CONFIG, "max_epochs": 6, "save_every_steps": 1}
    cmd = [sys.executable, "-m", "asr_gr.bin.train", "--exp-dir", str(tmp_path / "exp"), "--no-progress",
           "--train-dir", str(paths["train_dir"]), "--valid-dir", str(paths["valid_dir"]),
           "--token-list", str(paths["token_list"]), "--cmvn", str(paths["cmvn_path"])]
    for k, v in over.items():
        cmd += ["--set", f"{k}={v}"] if not isinstance(v, dict) else \
            [x for kk, vv in v.items() for x in ("--set", f"{k}.{kk}={vv}")]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (tmp_path / "exp" / "epoch2.pt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "exp" / "train_summary.json").exists(), "training finished before the kill"
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in (tmp_path / "exp" / "train.log").read_text()
    ref = _trainer(tmp_path, "ref", max_epochs=6, save_every_steps=1)
    ref.run()
    import json
    summary = json.loads((tmp_path / "exp" / "train_summary.json").read_text())
    assert summary["steps"] == ref.step and summary["epochs"] == 6


def test_non_finite_loss_is_skipped_then_stops(tmp_path, monkeypatch):
    t = _trainer(tmp_path, max_bad_steps=2)
    real = t.model.forward
    calls = {"n": 0}

    def nan_every_other(*a, **k):
        loss, stats = real(*a, **k)
        calls["n"] += 1
        return (loss * float("nan"), stats) if calls["n"] % 2 else (loss, stats)

    monkeypatch.setattr(t.model, "forward", nan_every_other)
    with pytest.raises(TrainingError, match=r"3 steps had a non-finite loss or gradient \(max_bad_steps=2\)"):
        t.run()
    assert t.bad_steps == 3 and t.step == 2  # the finite steps were taken, the others skipped


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    _trainer(tmp_path).run()
    ckpt = tmp_path / "exp" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    t = _trainer(tmp_path)
    assert t.resume()
    assert "checkpoint.pt cannot be loaded" in caplog.text
    assert t.epoch == 1  # checkpoint.prev.pt: the end of epoch 1


def test_two_process_ddp_on_cpu_ranks_agree(tmp_path):
    """torchrun with 2 CPU processes (gloo): batches are sharded, weights stay identical on both ranks."""
    paths = make_setup(tmp_path / "data")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "asr_gr.bin.train", "--exp-dir", str(tmp_path / "exp"), "--no-progress", "--ngpu", "0",
           "--train-dir", str(paths["train_dir"]), "--valid-dir", str(paths["valid_dir"]),
           "--heldout-dir", str(paths["heldout_dir"]),
           "--token-list", str(paths["token_list"]), "--cmvn", str(paths["cmvn_path"])]
    for k, v in TINY_CONFIG.items():
        cmd += ["--set", f"{k}={v}"] if not isinstance(v, dict) else \
            [x for kk, vv in v.items() for x in ("--set", f"{k}.{kk}={vv}")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    import json
    summary = json.loads((tmp_path / "exp" / "train_summary.json").read_text())
    single = _trainer(tmp_path, "single")
    single.run()
    assert summary["world_size"] == 2 and summary["steps"] == (single.steps_per_epoch // 2) * 2  # 2 epochs
    assert "all 2 ranks agree" in (tmp_path / "exp" / "train.log").read_text()


def test_validate_runs_the_encoder_once_per_batch_with_the_same_loss(tmp_path):
    from asr_gr.data.dataset import BucketSampler, collate

    t = _trainer(tmp_path, aux="mtl", max_epochs=1)
    calls = []
    encoder_forward = t.model.encoder.forward
    t.model.encoder.forward = lambda *a, **k: (calls.append(1), encoder_forward(*a, **k))[1]
    out = t.validate()
    batches = lambda ds: list(BucketSampler(ds.lengths, t.config["batch_frames"], shuffle=False))  # noqa: E731
    assert len(calls) == len(batches(t.valid_set)) + len(batches(t.heldout_set))
    # the loss is the model's own CTC loss (its forward), averaged over utterances
    total = 0.0
    with torch.no_grad():
        for idx in batches(t.valid_set):
            b = collate([t.valid_set[i] for i in idx])
            _, stats = t.model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], torch.full_like(b["spk"], -1))
            total += stats["loss_ctc"] * len(idx)
    assert out["valid_loss_ctc"] == pytest.approx(total / len(t.valid_set), rel=1e-6)
