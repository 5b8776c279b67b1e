"""Encoder + CTC head + optional speaker head, built by name from a config dict."""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging

import torch
import torch.nn.functional as F
from torch import nn

import asr_gr.models.encoders  # noqa: F401  (registers the encoders)
import asr_gr.models.speaker  # noqa: F401  (registers the aux heads)
from asr_gr.models.registry import AUX_HEADS, ENCODERS
from asr_gr.utils import ConfigError

log = logging.getLogger(__name__)


class StepStats(dict):
    """The stats of one forward pass (``ASRModel.forward``). The backward pass may still complete an
    entry (the adaptive gradient reversal's ``lambda`` is known only once both gradients reach its
    layer), so read them after ``backward()``. A dict subclass on purpose: DDP rebuilds the plain
    containers of a module's output (torch.utils._pytree) but hands back other objects as they are,
    so the caller holds this very dict, the one the backward pass writes to."""


class ASRModel(nn.Module):
    def __init__(self, encoder: nn.Module, vocab_size: int, aux_head: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.ctc_out = nn.Linear(encoder.output_dim, vocab_size)
        self.aux_head = aux_head

    def ctc_log_probs(self, feats, lens):
        out, out_lens, layers = self.encoder(feats, lens)
        # In fp32 whatever the autocast precision: log_softmax and the CTC loss need its range and
        # resolution (a no-op without autocast).
        return F.log_softmax(self.ctc_out(out).float(), dim=-1), out_lens, layers

    @staticmethod
    def ctc_loss(log_probs, out_lens, ys, y_lens):
        """(CTC loss averaged over the rows with a transcript, number of such rows); rows with
        ``y_lens == 0`` are untranscribed and add nothing (the loss is then a zero in the graph)."""
        has_text = y_lens > 0
        n_text = int(has_text.sum())
        if not n_text:
            return log_probs.sum() * 0.0, 0
        lp = log_probs[has_text].transpose(0, 1)
        targets = torch.cat([ys[i, : y_lens[i]] for i in torch.nonzero(has_text).flatten().tolist()])
        loss = F.ctc_loss(lp, targets, out_lens[has_text], y_lens[has_text], blank=0, reduction="sum",
                          zero_infinity=True) / n_text
        return loss, n_text

    def forward(self, feats, feat_lens, ys, y_lens, spk, progress: float = 0.0):
        """Return ``(loss, stats)``.

        ``ys`` (B, U) padded targets with lengths ``y_lens``; a row with ``y_lens == 0`` is untranscribed
        and adds no CTC loss. ``spk`` (B,) speaker indices, -1 where unknown. ``progress`` in [0, 1]
        drives the lambda schedule of an adversarial head. ``stats`` is a StepStats: with the adaptive
        schedule its ``lambda`` is NaN until ``loss.backward()`` has set the lambda applied.
        """
        stats = StepStats()
        tap = self.aux_head.encoder_tap(stats) if self.aux_head is not None and torch.is_grad_enabled() else None
        with self.encoder.tapped(*tap) if tap else contextlib.nullcontext():
            log_probs, out_lens, layers = self.ctc_log_probs(feats, feat_lens)
        loss_ctc, n_text = self.ctc_loss(log_probs, out_lens, ys, y_lens)
        if n_text:
            stats["loss_ctc"] = loss_ctc.item()
        loss = loss_ctc
        if self.aux_head is not None:
            loss_spk, spk_stats = self.aux_head(layers, out_lens, spk, progress)
            loss = loss + loss_spk
            stats.update(spk_stats)
        stats["loss"] = loss.item()
        stats["n_text"] = n_text
        return loss, stats


# Constructor arguments that build_model supplies itself (from the data), not the config.
_BUILT_IN_ARGS = {"input_dim", "layer_dims", "num_speakers"}


def class_defaults(cls) -> dict:
    """The keyword defaults of ``cls``'s constructor that a config may set (tuples as lists, as YAML
    writes them)."""
    out = {}
    for klass in cls.__mro__:  # a constructor passing **kwargs on takes its base class's keywords too
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for name, p in params.items():
            if name == "self" or name in _BUILT_IN_ARGS or name in out or p.default is inspect.Parameter.empty \
                    or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return out


def complete_model_conf(config: dict) -> tuple[dict, list[str]]:
    """Return (a copy of ``config`` whose ``encoder_conf``/``aux_conf`` hold every constructor value of the
    chosen encoder and aux head, the user's values over the class defaults; the keys that were filled
    in, e.g. ``encoder_conf.dropout``). Saved in config.yaml, this is every value the model was built
    with, so that a later change of a class default cannot silently rebuild a different model. Keys the
    class does not take are left for ``build_model`` to reject."""
    cfg = copy.deepcopy(config)
    filled = []
    parts = [("encoder_conf", ENCODERS.get(cfg.get("encoder", "conv_glu")))]
    aux = cfg.get("aux", "none") or "none"
    if aux != "none" and aux in AUX_HEADS.names():
        parts.append(("aux_conf", AUX_HEADS.get(aux)))
    for key, cls in parts:
        conf = dict(cfg.get(key) or {})
        for name, default in class_defaults(cls).items():
            if name not in conf:
                conf[name] = default
                filled.append(f"{key}.{name}")
        cfg[key] = {k: list(v) if isinstance(v, tuple) else v for k, v in conf.items()}
    return cfg, filled


def build_model(config: dict, input_dim: int, vocab_size: int, num_speakers: int) -> ASRModel:
    """Build from the config keys ``encoder``, ``encoder_conf``, ``aux``, ``aux_conf`` (pure: reads no files)."""
    enc_name = config.get("encoder", "conv_glu")
    encoder = ENCODERS.build(enc_name, input_dim=input_dim, **(config.get("encoder_conf") or {}))
    aux = config.get("aux", "none") or "none"
    if aux not in ["none"] + AUX_HEADS.names():
        raise ConfigError(f"unknown aux '{aux}'; known: none, {', '.join(AUX_HEADS.names())}")
    head = None
    if aux != "none":
        if num_speakers < 2:
            raise ConfigError(f"aux '{aux}' needs at least 2 training speakers, got {num_speakers}")
        conf = dict(config.get("aux_conf") or {})
        ignored = [k for k in getattr(AUX_HEADS.get(aux), "ignores", ()) if k in conf]
        if ignored:  # one config serves every --aux system; e.g. spk_lambda is adversarial's
            log.info("aux %s: ignoring aux_conf %s (used only by other heads)", aux, ", ".join(ignored))
            for k in ignored:
                del conf[k]
        head = AUX_HEADS.build(aux, layer_dims=encoder.layer_dims, num_speakers=num_speakers, **conf)
    return ASRModel(encoder, vocab_size, head)
