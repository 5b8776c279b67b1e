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
    with pytest.raises(ConfigError, match="known: constant, ganin, linear"):
        lambda_at("cosine", 1.0, 0.5)


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
