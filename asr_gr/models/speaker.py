"""Speaker classifiers on an encoder layer, as multi-task (mtl) or adversarial auxiliary heads.

``mtl`` and ``adversarial`` share one classifier; they differ only in the gradient that reaches the
encoder: mtl passes it unchanged (speaker information is encouraged), adversarial passes it through
a gradient reversal layer scaled by -lambda (speaker invariance is encouraged). The classifier itself
minimises the cross-entropy in both cases. With ``lambda_schedule: adaptive`` lambda is set in each
backward pass from the ratio of the ASR and speaker gradient norms at the layer the head reads
(asr_gr.models.grl.adaptive_reversal), through a tap on that layer of the encoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr_gr.models.grl import adaptive_reversal, check_schedule, lambda_at, mean_lambda, scale_grad
from asr_gr.models.registry import AUX_HEADS


def masked_mean(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Mean over time of (B, T, C) frames, counting only the first ``lens[b]`` frames of row b (summed
    in fp32 also under bf16/fp16 autocast)."""
    x = x.float()
    mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lens[:, None]).to(x.dtype)
    return (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1).clamp(min=1).unsqueeze(-1)


def masked_stats(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over valid frames, concatenated: (B, 2C)."""
    mean = masked_mean(x, lens)
    var = masked_mean((x - mean.unsqueeze(1)) ** 2, lens)
    return torch.cat([mean, var.clamp(min=1e-8).sqrt()], dim=-1)


class SpeakerClassifier(nn.Module):
    """Speaker classifier on a layer's frames.

    ``pooling``: ``mean`` (mean over time, then an MLP), ``stats`` (mean and standard deviation),
    or ``frame`` (the MLP classifies every frame, trained with per-frame cross-entropy, the common
    choice in adversarial ASR work; an utterance's decision averages its frames' log-probabilities).
    """

    POOLINGS = ("mean", "stats", "frame")

    def __init__(self, input_dim: int, num_speakers: int, hidden: int = 256, num_layers: int = 1,
                 dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        if pooling not in self.POOLINGS:
            raise ValueError(f"pooling '{pooling}' is unknown; known: {', '.join(self.POOLINGS)}")
        self.pooling = pooling
        layers, prev = [], 2 * input_dim if pooling == "stats" else input_dim
        for _ in range(num_layers):
            layers += [nn.Linear(prev, hidden), nn.ReLU(), nn.Dropout(dropout)]
            prev = hidden
        layers.append(nn.Linear(prev, num_speakers))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Utterance-level scores (B, num_speakers); argmax is the predicted speaker."""
        if self.pooling == "frame":
            return masked_mean(F.log_softmax(self.mlp(x), dim=-1), lens)
        return self.mlp(masked_stats(x, lens) if self.pooling == "stats" else masked_mean(x, lens))

    def loss(self, x: torch.Tensor, lens: torch.Tensor, spk: torch.Tensor):
        """(cross-entropy, utterance accuracy) for rows with spk >= 0 (the caller selects them)."""
        if self.pooling == "frame":
            logits = self.mlp(x)  # (B, T, S)
            mask = torch.arange(x.shape[1], device=x.device)[None, :] < lens[:, None]
            ce = F.cross_entropy(logits[mask], spk[:, None].expand_as(mask)[mask])
            scores = masked_mean(F.log_softmax(logits, dim=-1), lens)
        else:
            scores = self(x, lens)
            ce = F.cross_entropy(scores, spk)
        return ce, (scores.argmax(-1) == spk).float().mean()


@AUX_HEADS.register("mtl")
class MTLSpeakerHead(nn.Module):
    """Speaker classifier on layer ``spk_layer`` (1-based; negative counts from the top) whose loss,
    weighted by ``spk_weight``, is added to CTC."""

    reverse = False
    # Keys of the adversarial head that one config shared by every --aux system may carry; build_model
    # leaves them out for this head (they would configure nothing here).
    ignores = ("spk_lambda", "lambda_schedule", "lambda_gamma", "adaptive_alpha", "adaptive_smoothing")

    def __init__(self, layer_dims: list[int], num_speakers: int, spk_layer: int = -1,
                 spk_weight: float = 1.0, hidden: int = 256, num_layers: int = 1,
                 dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        n = len(layer_dims)
        if not (1 <= spk_layer <= n or -n <= spk_layer <= -1):
            raise ValueError(f"spk_layer={spk_layer} is out of range: the encoder has layers 1..{n}")
        self.layer_index = spk_layer - 1 if spk_layer > 0 else n + spk_layer
        self.spk_weight = spk_weight
        self.classifier = SpeakerClassifier(layer_dims[self.layer_index], num_speakers, hidden,
                                            num_layers, dropout, pooling)

    def grad_scale(self, progress: float) -> tuple[float, float]:
        """(scale applied to the gradient reaching the encoder, current lambda)."""
        return 1.0, 0.0

    def encoder_tap(self, record: dict):
        """``(layer index, fn)`` for ``Encoder.tapped`` when this head must see the encoder's gradients
        at its layer (the adaptive reversal), with ``record`` the step's stats; else None."""
        return None

    def branch(self, layers, progress: float) -> tuple[torch.Tensor, float]:
        """(what the classifier reads, with the gradient on its way back to the encoder scaled; lambda)."""
        scale, lam = self.grad_scale(progress)
        return scale_grad(layers[self.layer_index], scale), lam

    def forward(self, layers, lens, spk, progress: float = 0.0):
        """Return (weighted loss, stats) for rows with a known speaker (spk >= 0)."""
        x, lam = self.branch(layers, progress)
        known = spk >= 0
        if not bool(known.any()):
            zero = x.sum() * 0.0
            return zero, {"loss_spk": 0.0, "acc_spk": 0.0, "lambda": lam, "n_spk": 0}
        ce, acc = self.classifier.loss(x[known], lens[known], spk[known])
        return self.spk_weight * ce, {"loss_spk": ce.item(), "acc_spk": acc.item(), "lambda": lam,
                                      "n_spk": int(known.sum())}


@AUX_HEADS.register("adversarial")
class AdversarialSpeakerHead(MTLSpeakerHead):
    """The same classifier behind a gradient reversal layer: the encoder receives -lambda times the
    gradient of the speaker loss, lambda (``spk_lambda`` at most) following ``lambda_schedule``
    (``lambda_gamma``: the steepness of Ganin's schedule).

    ``lambda_schedule: adaptive`` (Zhou et al. 2023, our reading): lambda is set in each backward pass
    to ``adaptive_alpha * |g_ctc| / |g_spk|``, the ratio of the norms of the ASR gradient and of the
    (weighted) speaker gradient at the layer the head reads, so the reversed gradient there always
    has ``adaptive_alpha`` times the norm of the ASR gradient; ``adaptive_smoothing`` > 0 applies an
    exponential moving average of that ratio instead (``spk_lambda`` and ``lambda_gamma`` are unused).
    The encoder's tap on that layer, set by ASRModel.forward, applies it; the lambda applied is
    written into the step's stats by the backward pass, and kept in the buffer ``last_lambda``
    (checkpointed: a resumed run continues bit-exactly) for the EMA and for batches without an ASR
    gradient (untranscribed ones), which reuse it. See asr_gr.models.grl.adaptive_reversal.
    ``adaptive_alpha`` defaults to 0.03, chosen on mini_synth's dev set over two seeds: 1.0 and 0.3
    diverge (CTC never learns), 0.1 trains in one seed of two; 0.03 is the strongest that trains in
    both without a resolved dev CER loss (egs/mini_synth/asr1/RESULTS.md, grid finding 4)."""

    reverse = True
    ignores = ()

    def __init__(self, layer_dims: list[int], num_speakers: int, spk_lambda: float = 1.0,
                 lambda_schedule: str = "constant", lambda_gamma: float = 10.0, adaptive_alpha: float = 0.03,
                 adaptive_smoothing: float = 0.0, **classifier_conf):
        super().__init__(layer_dims, num_speakers, **classifier_conf)
        check_schedule(lambda_schedule)  # fail early on an unknown schedule
        self.spk_lambda, self.lambda_schedule, self.lambda_gamma = spk_lambda, lambda_schedule, lambda_gamma
        self.adaptive_alpha, self.adaptive_smoothing = adaptive_alpha, adaptive_smoothing
        self._tapped = None  # the branch the tap gave the head in this forward pass
        if lambda_schedule == "adaptive":
            self.register_buffer("last_lambda", torch.zeros(()))

    def grad_scale(self, progress: float) -> tuple[float, float]:
        lam = lambda_at(self.lambda_schedule, self.spk_lambda, progress, self.lambda_gamma)
        return -lam, lam

    def encoder_tap(self, record: dict):
        if self.lambda_schedule != "adaptive":
            return None

        def tap(x, lens):
            out, self._tapped = adaptive_reversal(x, lens, self.adaptive_alpha, self.last_lambda, record,
                                                  self.adaptive_smoothing)
            return out, self._tapped

        return self.layer_index, tap

    def branch(self, layers, progress: float) -> tuple[torch.Tensor, float]:
        if self.lambda_schedule != "adaptive":
            return super().branch(layers, progress)
        x, tapped, self._tapped = layers[self.layer_index], self._tapped, None
        if x.requires_grad and torch.is_grad_enabled() and x is not tapped:
            raise RuntimeError("lambda_schedule adaptive: the encoder's layer did not pass through the head's tap; "
                               "run the encoder and head through ASRModel.forward")
        # lambda is known only once the backward pass has both gradients: it then overwrites this NaN
        return x, float("nan")


def encoder_grad_scale(aux: str, aux_conf: dict | None, measured_lambda: float | None = None) -> float | None:
    """The effective scale of the speaker loss's gradient that reaches the encoder, averaged over the
    run: +spk_weight for mtl, -spk_weight * mean(lambda) for adversarial, None without a head. The
    adaptive schedule's mean lambda is ``measured_lambda``, the mean of the lambda logged at every
    step of the run (None: not measured, and so None).

    This is what makes two systems equally strong: mtl with weight 0.5 pushes the encoder with +0.5,
    adversarial with weight 0.5, lambda 0.5 and Ganin's schedule only with -0.22 on average.
    """
    if not aux or aux == "none":
        return None
    from asr_gr.models.asr_model import class_defaults  # (asr_model imports this module)

    cls = AUX_HEADS.get(aux)
    conf = {**class_defaults(cls), **(aux_conf or {})}
    weight = float(conf.get("spk_weight", 1.0))
    if not getattr(cls, "reverse", False):
        return weight
    if conf.get("lambda_schedule") == "adaptive":  # lambda comes from the gradients: only measured
        return None if measured_lambda is None else -weight * measured_lambda
    return -weight * mean_lambda(conf.get("lambda_schedule", "constant"), float(conf.get("spk_lambda", 1.0)),
                                 float(conf.get("lambda_gamma", 10.0)))
