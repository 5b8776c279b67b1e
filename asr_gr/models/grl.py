"""Gradient reversal (Ganin & Lempitsky 2015), schedules for its scale lambda, and the adaptive gradient
reversal (Zhou et al., ICASSP 2023, arXiv 2211.06369) whose lambda is set from gradient norms each step."""

from __future__ import annotations

import math

import torch

from asr_gr.utils import ConfigError

# lambda schedules; "adaptive" has no lambda before the backward pass (adaptive_reversal sets it there)
SCHEDULES = ("adaptive", "constant", "ganin", "linear")


def check_schedule(schedule: str) -> None:
    if schedule not in SCHEDULES:
        raise ConfigError(f"aux_conf.lambda_schedule: unknown schedule '{schedule}'; known: {', '.join(SCHEDULES)}")


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by ``scale`` in the backward pass.

    ``scale = -lambda`` is the gradient reversal layer; ``scale = 1`` is a no-op.
    """
    if scale == 1.0:
        return x
    return _ScaleGrad.apply(x, scale)


def lambda_at(schedule: str, lam: float, progress: float, gamma: float = 10.0,
              warmup: float = 0.1) -> float:
    """lambda at training progress ``progress`` in [0, 1].

    constant: lam;  linear: lam * min(1, progress / warmup);
    ganin: lam * (2 / (1 + exp(-gamma * progress)) - 1), Ganin & Lempitsky's schedule.
    (adaptive: none; its lambda comes from the gradients, see adaptive_reversal.)
    """
    check_schedule(schedule)
    if schedule == "adaptive":
        raise ValueError("the adaptive schedule's lambda is set in the backward pass (adaptive_reversal)")
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return lam
    if schedule == "linear":
        return lam * min(1.0, p / warmup) if warmup > 0 else lam
    return lam * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)  # ganin


def mean_lambda(schedule: str, lam: float, gamma: float = 10.0, warmup: float = 0.1) -> float:
    """lambda averaged over a whole training run (progress uniform in [0, 1], i.e. over steps).

    ganin: lam * (2/gamma * ln((1 + e^gamma) / 2) - 1) (0.861 lam for gamma 10); linear: lam * (1 -
    warmup/2); constant: lam. (adaptive: measured, not computed: the mean of the logged lambda.)
    """
    check_schedule(schedule)
    if schedule == "adaptive":
        raise ValueError("the adaptive schedule's mean lambda is measured: the steps' logged 'lambda'")
    if schedule == "constant":
        return lam
    if schedule == "linear":
        return lam * (1.0 - min(warmup, 1.0) / 2) if warmup > 0 else lam
    if gamma <= 0:  # ganin
        return 0.0
    log_mid = gamma + math.log1p(math.exp(-gamma)) - math.log(2.0)  # ln((1 + e^gamma) / 2), stable
    return lam * (2.0 / gamma * log_mid - 1.0)


class _AdaptiveReversal(torch.autograd.Function):
    """x -> (x for the layers above, x for the speaker head): identity twice in the forward pass. The
    backward pass receives both gradients at once, g_main (from the layers above, i.e. CTC) and g_spk
    (from the speaker head), and returns g_main - lambda * g_spk; see adaptive_reversal for lambda."""

    @staticmethod
    def forward(ctx, x, lens, alpha: float, smoothing: float, state: torch.Tensor, record: dict):
        ctx.save_for_backward(lens)
        ctx.alpha, ctx.smoothing, ctx.state, ctx.record = alpha, smoothing, state, record
        return x.view_as(x), x.view_as(x)

    @staticmethod
    def backward(ctx, g_main, g_spk):
        (lens,) = ctx.saved_tensors
        valid = (torch.arange(g_main.shape[1], device=lens.device)[None, :] < lens[:, None]).unsqueeze(-1)
        # both norms in fp32 (also under bf16/fp16 autocast) and in one device-to-host copy
        n_main, n_spk = torch.stack([torch.linalg.vector_norm(g.masked_fill(~valid, 0), dtype=torch.float32)
                                     for g in (g_main, g_spk)]).tolist()
        none = (None,) * 5
        if not (math.isfinite(n_main) and math.isfinite(n_spk)):
            # an fp16 overflow (the trainer drops the step): no measurement, the state is left as it is;
            # the gradient stays non-finite, so that the step is seen to be bad
            ctx.record["lambda"] = float("nan")
            return (g_main - g_spk,) + none
        prev = float(ctx.state)
        ratio = ctx.alpha * n_main / n_spk if n_spk > 0 else math.inf
        if n_spk == 0 or not math.isfinite(ratio):
            lam = 0.0  # no speaker gradient (no row with a known speaker): nothing to reverse
        elif n_main == 0:
            lam = prev  # no ASR gradient to measure against (an untranscribed batch): the last lambda
        else:
            lam = ratio if ctx.smoothing == 0 or prev == 0 else ctx.smoothing * prev + (1 - ctx.smoothing) * ratio
            ctx.state.fill_(lam)
        ctx.record["lambda"] = lam
        return (g_main if lam == 0.0 else g_main.add(g_spk, alpha=-lam),) + none


def adaptive_reversal(x: torch.Tensor, lens: torch.Tensor, alpha: float, state: torch.Tensor, record: dict,
                      smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The adaptive gradient reversal at a layer output ``x`` (B, T, C) with ``lens`` valid frames:
    ``(x_main, x_spk)``, both ``x`` in the forward pass; feed ``x_main`` to the layers above and
    ``x_spk`` to the speaker head. In the backward pass ``x`` receives g_main - lambda * g_spk, g_main and
    g_spk the gradients reaching ``x_main`` (the ASR loss's) and ``x_spk`` (the weighted speaker loss's):

        r = alpha * |g_main| / |g_spk|        (L2 norms over the batch's valid frames, in fp32)
        lambda = r                            (smoothing 0: the reversed gradient has norm alpha * |g_main|)
        lambda = smoothing * lambda_prev + (1 - smoothing) * r      (smoothing in (0, 1): an EMA)

    lambda is a number computed from the gradients' values, outside the graph (no second-order
    gradient). ``state`` (a 0-dim float tensor, e.g. a checkpointed buffer) holds the last lambda
    measured, 0 before the first (the EMA then starts at r). The lambda applied goes to
    ``record["lambda"]`` (NaN when the norms are not finite: an fp16 overflow). A batch without an ASR
    gradient (untranscribed: no CTC loss) applies ``state`` unchanged; one without a speaker
    gradient (no known speaker) applies 0. Both leave ``state`` as it is. Under DDP each rank
    measures its own batch (no collective here). Our reading of Zhou et al. (2023); README "Models
    and configs".
    """
    return _AdaptiveReversal.apply(x, lens, alpha, smoothing, state, record)
