"""Encoder + CTC head + optional speaker head, built by name from a config dict."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

import asr_gr.models.encoders  # noqa: F401  (registers the encoders)
import asr_gr.models.speaker  # noqa: F401  (registers the aux heads)
from asr_gr.models.registry import AUX_HEADS, ENCODERS
from asr_gr.utils import ConfigError

log = logging.getLogger(__name__)


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
        drives the lambda schedule of an adversarial head.
        """
        log_probs, out_lens, layers = self.ctc_log_probs(feats, feat_lens)
        stats: dict[str, float] = {}
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
