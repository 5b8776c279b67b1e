import math

import pytest
import torch

from asr_gr.models.asr_model import build_model
from asr_gr.models.grl import lambda_at, scale_grad
from asr_gr.utils import ConfigError


def test_scale_grad_is_identity_forward_and_scales_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = scale_grad(x, -0.7)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -0.7))


def test_lambda_schedules():
    assert lambda_at("constant", 0.5, 0.3) == 0.5
    assert lambda_at("ganin", 1.0, 0.0) == 0.0
    assert lambda_at("ganin", 1.0, 1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert lambda_at("linear", 2.0, 0.05, warmup=0.1) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="known: adaptive, constant, ganin, linear"):
        lambda_at("cosine", 1.0, 0.5)
    with pytest.raises(ValueError, match="set in the backward pass"):  # it has no a-priori value
        lambda_at("adaptive", 1.0, 0.5)


def _grad_at_spk_layer(aux: str, lam: float):
    """Gradient of the speaker loss alone w.r.t. the output of the layer the head reads."""
    torch.manual_seed(0)
    cfg = {"encoder": "conv_glu", "encoder_conf": {"channels": [8, 8, 8], "kernels": [3, 3, 3], "dropout": 0.0},
           "aux": aux, "aux_conf": {"spk_layer": 2, "spk_weight": 1.0, "spk_lambda": lam,
                                    "lambda_schedule": "constant", "dropout": 0.0}}
    model = build_model(cfg, input_dim=5, vocab_size=6, num_speakers=3)
    feats = torch.randn(2, 30, 5)
    lens = torch.tensor([30, 24])
    _, out_lens, layers = model.encoder(feats, lens)
    layers[1].retain_grad()
    loss, stats = model.aux_head(layers, out_lens, torch.tensor([0, 2]))
    loss.backward()
    head_grad = {n: p.grad.clone() for n, p in model.aux_head.named_parameters()}
    return layers[1].grad.clone(), head_grad, stats


def test_adversarial_reverses_and_scales_gradient_mtl_does_not():
    g_mtl, head_mtl, _ = _grad_at_spk_layer("mtl", 0.3)
    g_adv, head_adv, stats = _grad_at_spk_layer("adversarial", 0.3)
    assert g_mtl.abs().sum() > 0
    # The encoder receives -lambda times the gradient mtl passes on unchanged ...
    assert torch.allclose(g_adv, -0.3 * g_mtl, atol=1e-6)
    # ... while the classifier itself is trained identically (it still minimises the speaker loss).
    for name in head_mtl:
        assert torch.allclose(head_mtl[name], head_adv[name], atol=1e-6)
    assert stats["lambda"] == pytest.approx(0.3)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="unknown encoder 'lstm'; known: .*conv_glu"):
        build_model({"encoder": "lstm"}, 5, 6, 3)
    with pytest.raises(ConfigError, match="unknown aux 'adv'; known: none, adversarial, mtl"):
        build_model({"aux": "adv"}, 5, 6, 3)
    with pytest.raises(ConfigError, match="spk_layer=9 is out of range"):
        build_model({"aux": "mtl", "aux_conf": {"spk_layer": 9}}, 5, 6, 3)


def test_effective_encoder_scale_of_mtl_and_adversarial():
    from asr_gr.models.grl import mean_lambda
    from asr_gr.models.speaker import encoder_grad_scale

    # Ganin's schedule averaged over a run, against a fine numeric average
    n = 200001
    numeric = sum(lambda_at("ganin", 1.0, i / (n - 1)) for i in range(n)) / n
    assert mean_lambda("ganin", 1.0) == pytest.approx(numeric, abs=1e-5)
    assert mean_lambda("ganin", 1.0) == pytest.approx(0.8614, abs=1e-4)
    assert mean_lambda("linear", 2.0) == pytest.approx(2.0 * 0.95)
    conf = {"spk_weight": 0.5, "spk_lambda": 0.5, "lambda_schedule": "ganin"}
    assert encoder_grad_scale("mtl", conf) == 0.5  # lambda means nothing without reversal
    assert encoder_grad_scale("adversarial", conf) == pytest.approx(-0.5 * 0.5 * 0.8614, abs=1e-4)
    assert encoder_grad_scale("none", conf) is None
    assert encoder_grad_scale("adversarial", {}) == -1.0  # class defaults: weight 1, constant lambda 1
    assert not math.isnan(mean_lambda("ganin", 1.0, gamma=1000.0))


def test_mtl_head_takes_no_lambda_and_a_shared_config_still_builds_it(caplog):
    import inspect

    from asr_gr.models.speaker import AdversarialSpeakerHead, MTLSpeakerHead

    assert "spk_lambda" not in inspect.signature(MTLSpeakerHead).parameters
    assert {"spk_lambda", "lambda_schedule", "lambda_gamma"} <= set(
        inspect.signature(AdversarialSpeakerHead).parameters)
    with pytest.raises(TypeError):
        MTLSpeakerHead([8, 8], 3, spk_lambda=0.5)
    # one config for every --aux system (and exp dirs of before) carries spk_lambda under aux mtl
    cfg = {"encoder": "conv_glu", "encoder_conf": {"channels": [8, 8], "kernels": [3, 3]}, "aux": "mtl",
           "aux_conf": {"spk_layer": 1, "spk_lambda": 0.5, "lambda_schedule": "ganin", "hidden": 4}}
    with caplog.at_level("INFO"):
        head = build_model(cfg, 5, 6, 3).aux_head
    assert isinstance(head, MTLSpeakerHead) and not hasattr(head, "spk_lambda")
    assert "aux mtl: ignoring aux_conf spk_lambda, lambda_schedule" in caplog.text
    adv = build_model(dict(cfg, aux="adversarial"), 5, 6, 3).aux_head
    assert adv.spk_lambda == 0.5 and adv.lambda_schedule == "ganin" and adv.classifier.mlp[0].out_features == 4
    with pytest.raises(ConfigError, match="unknown schedule 'ganim'"):
        build_model(dict(cfg, aux="adversarial", aux_conf={"lambda_schedule": "ganim"}), 5, 6, 3)


# ---- the adaptive gradient reversal (lambda_schedule: adaptive) --------------------------------------

def _adaptive_setup(encoder="conv_glu", alpha=0.3, spk_layer=2, weight=0.5):
    torch.manual_seed(0)
    enc_conf = {"conv_glu": {"channels": [8, 8, 8], "kernels": [3, 3, 3], "dropout": 0.0},
                "blstm": {"hidden": 6, "num_layers": 3, "dropout": 0.0},
                "conformer": {"d_model": 8, "num_heads": 2, "ffn_dim": 16, "num_layers": 3, "dropout": 0.0}}
    cfg = {"encoder": encoder, "encoder_conf": enc_conf[encoder], "aux": "adversarial",
           "aux_conf": {"spk_layer": spk_layer, "spk_weight": weight, "lambda_schedule": "adaptive",
                        "adaptive_alpha": alpha, "dropout": 0.0}}
    model = build_model(cfg, input_dim=13, vocab_size=6, num_speakers=3)
    torch.manual_seed(1)
    batch = {"feats": torch.randn(3, 48, 13), "feat_lens": torch.tensor([48, 40, 29]),
             "ys": torch.tensor([[1, 2, 3], [4, 5, 0], [2, 0, 0]]), "y_lens": torch.tensor([3, 2, 1]),
             "spk": torch.tensor([0, 2, 1])}
    return model, batch


def _reference_grads(model, b):
    """The plain gradients at the layer the head reads, g_ctc (from CTC through the layers above) and
    g_spk (from the weighted speaker loss through the head), and the head's own parameter gradients, from
    an ordinary forward pass (no tap), with the same weights."""
    head = model.aux_head
    out, lens, layers = model.encoder(b["feats"], b["feat_lens"])
    h = layers[head.layer_index]
    lp = torch.nn.functional.log_softmax(model.ctc_out(out).float(), dim=-1)
    loss_ctc, _ = model.ctc_loss(lp, lens, b["ys"], b["y_lens"])
    ce, _ = head.classifier.loss(h, lens, b["spk"])
    enc = list(model.encoder.parameters())
    g_ctc, *p_ctc = torch.autograd.grad(loss_ctc, [h, *enc], retain_graph=True, allow_unused=True)
    g_spk, *rest = torch.autograd.grad(head.spk_weight * ce, [h, *head.parameters(), *enc], allow_unused=True)
    g_head, p_spk = rest[:len(rest) - len(enc)], rest[len(rest) - len(enc):]
    zero = lambda g, p: torch.zeros_like(p) if g is None else g  # noqa: E731 (not reached from that loss)
    model.encoder_grads = [(p, zero(a, p), zero(b, p)) for p, a, b in zip(enc, p_ctc, p_spk)]
    valid = (torch.arange(h.shape[1])[None, :] < lens[:, None]).unsqueeze(-1)
    return g_ctc * valid, g_spk * valid, g_head, valid


def _adaptive_step(model, b, precision="fp32"):
    """ASRModel.forward + backward; returns (stats, the gradient that reached the tapped layer output)."""
    from asr_gr.device import autocast

    head, seen = model.aux_head, {}
    tap_of = head.encoder_tap

    def spying_tap(record):  # the real tap, with a hook on its input: the gradient the encoder gets there
        index, fn = tap_of(record)

        def fn_with_hook(x, lens):
            x.register_hook(lambda g: seen.update(grad=g.float()))  # (returns None: g unchanged)
            return fn(x, lens)
        return index, fn_with_hook

    head.encoder_tap = spying_tap
    with autocast("cpu", precision):
        loss, stats = model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], b["spk"])
    assert math.isnan(stats["lambda"])  # not known before the backward pass
    loss.backward()
    del head.encoder_tap
    return stats, seen["grad"]


@pytest.mark.parametrize("encoder", ["conv_glu", "blstm", "conformer"])
def test_adaptive_reversal_gives_the_encoder_alpha_times_the_ctc_gradient_norm_reversed(encoder):
    model, b = _adaptive_setup(encoder, alpha=0.3)
    g_ctc, g_spk, g_head_ref, valid = _reference_grads(model, b)
    stats, g = _adaptive_step(model, b)
    g = g * valid
    reversed_part = g - g_ctc  # what the speaker branch sent into the encoder
    lam = stats["lambda"]
    # its norm is alpha times the CTC gradient's at this layer (valid frames), and it points against
    # the speaker gradient: the encoder is pushed to make the speaker loss larger
    assert float(reversed_part.norm()) == pytest.approx(0.3 * float(g_ctc.norm()), rel=1e-4)
    assert torch.nn.functional.cosine_similarity(reversed_part.flatten(), g_spk.flatten(), dim=0) < -0.9999
    # the lambda logged is the one applied: reversed part = -lambda * g_spk, lambda = 0.3 |g_ctc| / |g_spk|
    assert lam == pytest.approx(0.3 * float(g_ctc.norm() / g_spk.norm()), rel=1e-5)
    assert torch.allclose(reversed_part, -lam * g_spk, rtol=1e-4, atol=1e-6 * float(g_spk.abs().max()) * lam)
    assert float(model.aux_head.last_lambda) == pytest.approx(lam)
    # the classifier itself gets the plain, unreversed gradient of the weighted speaker loss
    for p, ref in zip(model.aux_head.parameters(), g_head_ref):
        assert torch.allclose(p.grad, ref, rtol=1e-5, atol=1e-7)
    # every encoder weight gets its CTC gradient minus lambda times its speaker gradient (the layers
    # above the tap: the CTC gradient alone; the speaker head does not read them)
    above, scale = 0, max(float((a - lam * b).abs().max()) for _, a, b in model.encoder_grads)
    for p, from_ctc, from_spk in model.encoder_grads:
        assert torch.allclose(p.grad, from_ctc - lam * from_spk, rtol=1e-4, atol=1e-5 * scale)
        above += int(from_spk.abs().max() == 0 and from_ctc.abs().max() > 0)
    assert above > 0


def test_adaptive_reversal_under_bf16_autocast():
    model, b = _adaptive_setup("conv_glu", alpha=0.5)
    g_ctc, g_spk, _, valid = _reference_grads(model, b)
    model.zero_grad()
    stats, g = _adaptive_step(model, b, precision="bf16")
    assert math.isfinite(stats["lambda"]) and stats["lambda"] > 0
    reversed_part = g * valid - g_ctc
    # bf16 keeps ~3 significant digits: the relation holds to a few percent
    assert float(reversed_part.norm()) == pytest.approx(0.5 * float(g_ctc.norm()), rel=0.1)
    assert torch.nn.functional.cosine_similarity(reversed_part.flatten(), g_spk.flatten(), dim=0) < -0.98
    assert stats["lambda"] == pytest.approx(0.5 * float(g_ctc.norm() / g_spk.norm()), rel=0.1)


def test_adaptive_reversal_function_measures_valid_frames_only_and_survives_overflow():
    from asr_gr.models.grl import adaptive_reversal

    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, requires_grad=True)
    lens = torch.tensor([5, 3])
    g_main, g_spk = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    g_main[1, 3:] = 1e3  # padded frames: not counted (the encoder zeroes them anyway)
    valid = (torch.arange(5)[None, :] < lens[:, None]).unsqueeze(-1)
    state, record = torch.zeros(()), {}
    a, b = adaptive_reversal(x, lens, 0.7, state, record)
    assert torch.equal(a, x) and torch.equal(b, x)
    ((a * g_main).sum() + (b * g_spk).sum()).backward()
    lam = 0.7 * float((g_main * valid).norm() / (g_spk * valid).norm())
    assert record["lambda"] == pytest.approx(lam, rel=1e-6) and float(state) == pytest.approx(lam, rel=1e-6)
    assert torch.allclose(x.grad, g_main - lam * g_spk, rtol=1e-6, atol=1e-6)
    # an fp16-style overflow in one gradient: lambda NaN, the state kept, the gradient left non-finite
    x.grad, record = None, {}
    g_spk[0, 0, 0] = math.inf
    a, b = adaptive_reversal(x, lens, 0.7, state, record)
    ((a * g_main).sum() + (b * g_spk).sum()).backward()
    assert math.isnan(record["lambda"]) and float(state) == pytest.approx(lam, rel=1e-6)
    assert not torch.isfinite(x.grad).all()


def test_adaptive_smoothing_applies_an_ema_of_the_measured_ratio():
    model, b = _adaptive_setup("conv_glu", alpha=0.3)
    model.aux_head.adaptive_smoothing = 0.6
    first, _ = _adaptive_step(model, b)
    model.zero_grad()
    model.aux_head.spk_weight = 0.2  # the speaker gradient 2.5 times smaller: its ratio 2.5 times larger
    torch.manual_seed(5)
    other = dict(b, feats=b["feats"] + 0.5 * torch.randn_like(b["feats"]), spk=torch.tensor([2, 1, 0]))
    g_ctc, g_spk, _, valid = _reference_grads(model, other)
    ratio = 0.3 * float(g_ctc.norm() / g_spk.norm())
    stats, g = _adaptive_step(model, other)
    assert ratio > 2 * first["lambda"]  # the two batches' ratios differ ...
    lam = 0.6 * first["lambda"] + 0.4 * ratio  # ... and the second step applies their EMA
    assert stats["lambda"] == pytest.approx(lam, rel=1e-5)
    assert float(model.aux_head.last_lambda) == pytest.approx(lam, rel=1e-5)
    assert torch.allclose(g * valid - g_ctc, -lam * g_spk, rtol=1e-4, atol=1e-6 * float(g_spk.abs().max()) * lam)


def test_adaptive_untranscribed_batch_reuses_the_last_lambda_and_no_speaker_means_no_push():
    model, b = _adaptive_setup("conv_glu", alpha=0.3)
    first, _ = _adaptive_step(model, b)
    model.zero_grad()
    untranscribed = dict(b, y_lens=torch.zeros(3, dtype=torch.long))  # no CTC loss: no g_ctc to measure
    g_ctc, g_spk, _, valid = _reference_grads(model, untranscribed)
    assert g_ctc.abs().max() == 0
    stats, g = _adaptive_step(model, untranscribed)
    assert stats["lambda"] == pytest.approx(first["lambda"], rel=1e-6)  # ... so the last one measured
    assert torch.allclose(g * valid, -stats["lambda"] * g_spk, rtol=1e-4, atol=1e-9)
    model.zero_grad()
    stats, g = _adaptive_step(model, dict(b, spk=torch.full((3,), -1)))  # no known speaker
    assert stats["lambda"] == 0.0 and float(model.aux_head.last_lambda) == pytest.approx(first["lambda"])


def test_adaptive_needs_the_tap_and_checks_alpha():
    from asr_gr.train.checks import validate_config

    model, b = _adaptive_setup("conv_glu")
    _, lens, layers = model.encoder(b["feats"], b["feat_lens"])  # no tap: the head cannot reverse
    with pytest.raises(RuntimeError, match="did not pass through the head's tap"):
        model.aux_head(layers, lens, b["spk"])
    with torch.no_grad():  # without gradients there is nothing to reverse: the head just classifies
        _, stats = model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], b["spk"])
    assert math.isnan(stats["lambda"]) and stats["n_spk"] == 3
    for bad in (0.0, -1.0):
        with pytest.raises(ConfigError, match=r"key 'aux_conf.adaptive_alpha' must lie in \(0.0, inf\)"):
            validate_config({"aux_conf": {"adaptive_alpha": bad}})
    for bad in (1.0, -0.1, math.nan):
        with pytest.raises(ConfigError, match=r"conf/x.yaml: key 'aux_conf.adaptive_smoothing' must") as e:
            validate_config({"aux_conf": {"adaptive_smoothing": bad}}, source="conf/x.yaml")
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="known: adaptive, constant, ganin, linear"):
        build_model({"aux": "adversarial", "aux_conf": {"lambda_schedule": "adaptiv"}}, 5, 6, 3)
    # one config serves every --aux system: mtl leaves adaptive_alpha out
    mtl = build_model({"aux": "mtl", "aux_conf": {"lambda_schedule": "adaptive", "adaptive_alpha": 0.2,
                                                  "adaptive_smoothing": 0.9}}, 5, 6, 3)
    assert not hasattr(mtl.aux_head, "adaptive_alpha")
    # the other schedules are untouched: no tap, no buffer (their checkpoints keep their keys)
    for schedule in ("constant", "linear", "ganin"):
        adv = build_model({"aux": "adversarial", "aux_conf": {"lambda_schedule": schedule}}, 5, 6, 3)
        assert adv.aux_head.encoder_tap({}) is None and "aux_head.last_lambda" not in adv.state_dict()


def test_step_stats_survive_ddp_rebuilding_the_output():
    """DDP (find_unused_parameters, as the trainer wraps it) rebuilds plain containers of the forward's
    output; the stats object must come back as itself, so that the lambda the backward pass writes
    reaches the trainer. A real one-process gloo DDP."""
    import tempfile

    import torch.distributed as dist

    model, b = _adaptive_setup("conv_glu", alpha=0.3)
    with tempfile.NamedTemporaryFile() as f:
        dist.init_process_group("gloo", init_method=f"file://{f.name}", rank=0, world_size=1)
        try:
            ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
            loss, stats = ddp(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], b["spk"])
            loss.backward()
        finally:
            dist.destroy_process_group()
    assert math.isfinite(stats["lambda"]) and stats["lambda"] == pytest.approx(float(model.aux_head.last_lambda))


def test_effective_encoder_scale_of_the_adaptive_schedule_is_the_measured_one():
    from asr_gr.models.speaker import encoder_grad_scale

    conf = {"spk_weight": 0.5, "lambda_schedule": "adaptive", "spk_lambda": 0.7}
    assert encoder_grad_scale("adversarial", conf) is None  # nothing measured: no number
    assert encoder_grad_scale("adversarial", conf, measured_lambda=3.0) == pytest.approx(-1.5)
    assert encoder_grad_scale("mtl", conf, measured_lambda=3.0) == 0.5


def _adaptive_trainer(tmp_path, exp="exp", **over):
    from asr_gr.config import resolve
    from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
    from tiny_data import TINY_CONFIG, make_setup

    data = tmp_path / "data"
    paths = make_setup(data) if not data.exists() else {
        "train_dir": data / "train", "valid_dir": data / "dev", "heldout_dir": data / "train",
        "token_list": data / "tokens.txt", "cmvn_path": data / "cmvn.ark"}
    over = {**TINY_CONFIG, "aux_conf": {**TINY_CONFIG["aux_conf"], "lambda_schedule": "adaptive",
                                        "adaptive_alpha": 0.2, "adaptive_smoothing": 0.5, "spk_weight": 0.5},
            "log_every_steps": 1, **over}
    cfg = resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in over.items()])
    return Trainer(cfg, tmp_path / exp, progress=False, **paths)


def test_training_with_the_adaptive_schedule_logs_lambda_and_resumes_bit_exactly(tmp_path, caplog, monkeypatch):
    """A short real training run: the lambda of every step is logged (the log, metrics.jsonl), the
    grid/RESULTS effective scale is -w times its mean over the run's steps, the EMA state is
    checkpointed, and a run killed mid-epoch and resumed ends with the same weights, state and lambdas."""
    import re

    from asr_gr.bin.results import measured_mean_lambda
    from asr_gr.models.speaker import encoder_grad_scale

    t = _adaptive_trainer(tmp_path, save_every_steps=1)
    t.write_setup()  # config.yaml, as asr_gr.bin.train writes it
    with caplog.at_level("INFO", logger="asr_gr.train.trainer"):
        t.run()
    assert t.bad_steps == 0 and t.step > 3
    logged = [float(x) for x in re.findall(r"step \d+: .*? lambda=(\S+)", caplog.text)]
    assert len(logged) == t.step and all(math.isfinite(x) and x > 0 for x in logged)
    assert len(set(logged)) > 1  # measured anew at every step
    mean = measured_mean_lambda(tmp_path / "exp")
    assert mean == pytest.approx(sum(logged) / len(logged), rel=1e-3)  # (the log prints 4 digits)
    saved = yaml_load(tmp_path / "exp" / "config.yaml")["aux_conf"]
    assert saved["lambda_schedule"] == "adaptive" and saved["adaptive_alpha"] == 0.2
    assert saved["adaptive_smoothing"] == 0.5
    assert encoder_grad_scale("adversarial", saved, mean) == pytest.approx(-0.5 * mean)
    ref = torch.load(tmp_path / "exp" / "epoch2.pt", weights_only=True)
    assert float(ref["aux_head.last_lambda"]) == pytest.approx(logged[-1], rel=1e-3)

    cut = _adaptive_trainer(tmp_path, "cut", save_every_steps=1)
    real_save, calls = cut.save, {"n": 0}

    def save_then_die(*, epoch_end):  # killed after its 3rd checkpoint, mid-epoch 1, as a crash would
        real_save(epoch_end=epoch_end)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cut, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    resumed = _adaptive_trainer(tmp_path, "cut", save_every_steps=1)
    resumed.run()
    assert resumed.step == t.step
    out = torch.load(tmp_path / "cut" / "epoch2.pt", weights_only=True)
    assert out.keys() == ref.keys() and all(torch.equal(ref[k], out[k]) for k in ref)
    assert measured_mean_lambda(tmp_path / "cut") == mean


def test_training_with_the_adaptive_schedule_under_bf16(tmp_path):
    from asr_gr.bin.results import measured_mean_lambda

    t = _adaptive_trainer(tmp_path, precision="bf16", max_epochs=1)
    t.run()
    assert t.bad_steps == 0 and t.step > 0
    mean = measured_mean_lambda(tmp_path / "exp")
    assert mean is not None and math.isfinite(mean) and mean > 0


def yaml_load(path):
    import yaml

    return yaml.safe_load(path.read_text())
