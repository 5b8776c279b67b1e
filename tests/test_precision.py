"""Mixed precision (bf16/fp16 autocast), data-loader workers and out-of-memory errors in training."""

import json

import pytest
import torch

from asr_gr.config import resolve
from asr_gr.device import autocast, pick_device
from asr_gr.models.asr_model import build_model
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from asr_gr.utils import ConfigError
from tiny_data import TINY_CONFIG, make_setup


def _trainer(tmp_path, exp="exp", **over):
    root = tmp_path / "data"
    if root.exists():
        paths = {"train_dir": root / "train", "valid_dir": root / "dev", "heldout_dir": root / "train",
                 "token_list": root / "tokens.txt", "cmvn_path": root / "cmvn.ark"}
    else:
        paths = make_setup(root)
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, **over}.items()])
    return Trainer(cfg, tmp_path / exp, progress=False, **paths)


def _weights(path):
    return torch.load(path, weights_only=True)


def _metrics(exp):
    return [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]


def test_bf16_trains_in_low_precision_with_fp32_weights_and_ctc(tmp_path):
    _trainer(tmp_path, "fp32").run()
    t = _trainer(tmp_path, "bf16", precision="bf16")
    t.run()
    a, b = _weights(tmp_path / "fp32" / "epoch2.pt"), _weights(tmp_path / "bf16" / "epoch2.pt")
    assert all(v.dtype == torch.float32 for v in b.values())  # master weights stay fp32
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the forward really ran in bf16
    m = _metrics(tmp_path / "bf16")
    assert all(torch.isfinite(torch.tensor(r["train_loss_ctc"])) for r in m) and t.bad_steps == 0
    # the CTC log-probabilities leave the model in fp32 under autocast
    with autocast("cpu", "bf16"):
        lp, _, layers = t.model.ctc_log_probs(torch.randn(2, 40, 13), torch.tensor([40, 30]))
    assert lp.dtype == torch.float32 and layers[0].dtype == torch.bfloat16


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    from asr_gr.device import cpu_bf16_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
                    "processor\t: 1\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    assert cpu_bf16_flags(str(info)) == ("avx512_bf16", "amx_bf16")
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f\n")  # AVX512 without BF16
    assert cpu_bf16_flags(str(info)) == ()
    assert cpu_bf16_flags(str(tmp_path / "absent")) == ()


def test_auto_precision_is_bf16_on_a_native_bf16_cpu_and_fp32_elsewhere(tmp_path, monkeypatch):
    """precision: auto trains exactly as bf16 where the CPU has AVX512-BF16/AMX and exactly as fp32 where
    bf16 would be emulated (many times slower); the checkpoint and train_summary.json say which."""
    import asr_gr.device as device

    _trainer(tmp_path, "fp32").run()
    _trainer(tmp_path, "bf16", precision="bf16").run()
    for flags, same_as in (((), "fp32"), (("amx_bf16",), "bf16")):
        monkeypatch.setattr(device, "cpu_bf16_flags", lambda flags=flags: flags)
        exp = f"auto_{same_as}"
        t = _trainer(tmp_path, exp, precision="auto")
        assert t.precision == same_as
        t.write_setup()
        t.run()
        a, b = _weights(tmp_path / same_as / "epoch2.pt"), _weights(tmp_path / exp / "epoch2.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert torch.load(tmp_path / exp / "checkpoint.pt", weights_only=False)["precision"] == same_as
        assert json.loads((tmp_path / exp / "train_summary.json").read_text())["precision"] == same_as
        assert "precision: auto" in (tmp_path / exp / "config.yaml").read_text()  # what was asked, as asked


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_resumes_mid_epoch_bit_exactly(tmp_path, monkeypatch, precision):
    ref = _trainer(tmp_path, "ref", save_every_steps=1, precision=precision)
    ref.run()
    t = _trainer(tmp_path, "cut", save_every_steps=1, precision=precision)
    real_save, calls = t.save, {"n": 0}

    def save_then_die(*, epoch_end):
        real_save(epoch_end=epoch_end)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(t, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert state["precision"] == precision
    if precision == "fp16":  # the loss scale is part of the state
        assert state["scaler"]["scale"] > 0
    resumed = _trainer(tmp_path, "cut", save_every_steps=1, precision=precision)
    resumed.run()
    assert resumed.step == ref.step
    if precision == "fp16":
        assert resumed.scaler.get_scale() == ref.scaler.get_scale()
    a, b = _weights(tmp_path / "ref" / "epoch2.pt"), _weights(tmp_path / "cut" / "epoch2.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fp16_overflow_lowers_the_scale_without_counting_bad_steps(tmp_path):
    t = _trainer(tmp_path, precision="fp16", max_epochs=3)
    t.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 18)  # the scaled loss overflows fp16
    t.run()
    assert t.scaler.get_scale() < 2.0 ** 18 and t.bad_steps == 0
    assert 0 < t.step < 3 * t.steps_per_epoch  # the overflowing batches were dropped, the rest trained


def test_gradient_reversal_flips_the_sign_under_bf16_autocast():
    grads = {}
    for aux in ("mtl", "adversarial"):
        torch.manual_seed(0)
        cfg = {"encoder": "conv_glu", "encoder_conf": {"channels": [16, 16, 16], "kernels": [3, 3, 3],
                                                       "dropout": 0.0},
               "aux": aux, "aux_conf": {"spk_layer": 2, "spk_weight": 1.0, "spk_lambda": 0.5,
                                        "lambda_schedule": "constant", "dropout": 0.0}}
        model = build_model(cfg, input_dim=5, vocab_size=6, num_speakers=3)
        torch.manual_seed(1)
        feats, lens = torch.randn(2, 30, 5), torch.tensor([30, 24])
        with autocast("cpu", "bf16"):
            _, out_lens, layers = model.encoder(feats, lens)
            loss, _ = model.aux_head(layers, out_lens, torch.tensor([0, 2]))
        assert layers[1].dtype == torch.bfloat16
        loss.backward()
        # the encoder's first layer receives only the speaker head's gradient here
        grads[aux] = torch.cat([p.grad.flatten().float() for p in model.encoder.blocks[0].parameters()])
    mtl, adv = grads["mtl"], grads["adversarial"]
    assert mtl.abs().sum() > 0
    cos = torch.nn.functional.cosine_similarity(mtl, adv, dim=0)
    assert cos < -0.99  # opposite direction ...
    assert torch.allclose(adv, -0.5 * mtl, rtol=0.05, atol=1e-3 * float(mtl.abs().max()))  # ... scaled by lambda


def test_num_workers_do_not_change_the_results(tmp_path):
    _trainer(tmp_path, "w0", max_epochs=1).run()
    _trainer(tmp_path, "w2", max_epochs=1, num_workers=2, prefetch_factor=3).run()
    m0, m2 = _metrics(tmp_path / "w0")[0], _metrics(tmp_path / "w2")[0]
    for k in ("train_loss", "train_loss_ctc", "train_loss_spk", "valid_loss_ctc", "valid_cer"):
        assert m0[k] == m2[k], k
    a, b = _weights(tmp_path / "w0" / "epoch1.pt"), _weights(tmp_path / "w2" / "epoch1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert 0.0 <= m2["data_wait"] < 1.0


def test_bad_precision_and_worker_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="key 'precision' must be one of fp32, bf16, fp16, auto; got 'fp8'"):
        _trainer(tmp_path, precision="fp8")
    with pytest.raises(ConfigError, match=r"key 'num_workers' must lie in \[0, inf\), got -1"):
        _trainer(tmp_path, num_workers=-1)
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; known: fp32, bf16, fp16, auto"):
        autocast("cpu", "fp8")


def test_cuda_out_of_memory_is_one_line_naming_batch_frames(tmp_path, monkeypatch, capsys):
    from asr_gr.bin import train
    from asr_gr.models.asr_model import ASRModel

    paths = make_setup(tmp_path / "data")

    def oom(self, *a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(ASRModel, "forward", oom)
    argv = ["--exp-dir", str(tmp_path / "exp"), "--no-progress", "--train-dir", str(paths["train_dir"]),
            "--valid-dir", str(paths["valid_dir"]), "--token-list", str(paths["token_list"]),
            "--cmvn", str(paths["cmvn_path"]), "--set", "batch_frames=600", "--set", "max_epochs=1",
            "--set", "encoder_conf.channels=[8]", "--set", "encoder_conf.kernels=[3]"]
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("ERROR: batch_frames: batches of up to 600 padded frames do not fit in the memory of "
                       "cpu (out of memory); lower it, e.g. --set batch_frames=300")
    assert not any("Traceback" in line for line in err)


def test_device_rule():
    assert pick_device(None, ngpu=0).type == "cpu"
    assert pick_device("cpu", ngpu=1).type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device(None, ngpu=1).type == "cpu"  # the config asks for a GPU, none is visible
        with pytest.raises(ConfigError, match="torch sees no CUDA device; use --device cpu"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="'tpu' is not a device"):
        pick_device("tpu")
