"""Gradient reversal (Ganin & Lempitsky 2015) and schedules for its scale lambda."""

from __future__ import annotations

import math

import torch

from asr_gr.utils import ConfigError


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
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return lam
    if schedule == "linear":
        return lam * min(1.0, p / warmup) if warmup > 0 else lam
    if schedule == "ganin":
        return lam * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)
    raise ConfigError(f"aux_conf.lambda_schedule: unknown schedule '{schedule}'; known: constant, ganin, linear")


def mean_lambda(schedule: str, lam: float, gamma: float = 10.0, warmup: float = 0.1) -> float:
    """lambda averaged over a whole training run (progress uniform in [0, 1], i.e. over steps).

    ganin: lam * (2/gamma * ln((1 + e^gamma) / 2) - 1) (0.861 lam for gamma 10); linear: lam * (1 -
    warmup/2); constant: lam.
    """
    if schedule == "constant":
        return lam
    if schedule == "linear":
        return lam * (1.0 - min(warmup, 1.0) / 2) if warmup > 0 else lam
    if schedule == "ganin":
        if gamma <= 0:
            return 0.0
        log_mid = gamma + math.log1p(math.exp(-gamma)) - math.log(2.0)  # ln((1 + e^gamma) / 2), stable
        return lam * (2.0 / gamma * log_mid - 1.0)
    raise ConfigError(f"aux_conf.lambda_schedule: unknown schedule '{schedule}'; known: constant, ganin, linear")
