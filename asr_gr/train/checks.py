"""Checks that run before training writes anything: config values that make no sense (the type checks
of asr_gr.config let ``spk_lambda: .nan`` or ``max_epochs: 0`` through), and training utterances whose
transcript CTC cannot align to their (subsampled) frames."""

from __future__ import annotations

import logging
import math

import torch

from asr_gr.utils import ConfigError, DataError

log = logging.getLogger(__name__)

# key -> (lowest allowed, lowest is allowed?, highest allowed or None, highest allowed?)
_RANGES = {
    "lr": (0.0, False, None, False),
    "weight_decay": (0.0, True, None, False),
    "warmup_steps": (0, True, None, False),
    "final_lr_ratio": (0.0, True, 1.0, True),
    "batch_frames": (1, True, None, False),
    "max_epochs": (1, True, None, False),
    "grad_clip": (0.0, False, None, False),
    "num_threads": (0, True, None, False),
    "ngpu": (0, True, None, False),
    "untranscribed_ratio": (0.0, True, None, False),
    "log_every_steps": (0, True, None, False),
    "nbest_average": (0, True, None, False),
    "save_every_steps": (0, True, None, False),
    "max_bad_steps": (0, True, None, False),
    "num_workers": (0, True, None, False),
    "prefetch_factor": (1, True, None, False),
    "aux_conf.spk_weight": (0.0, True, None, False),
    "aux_conf.spk_lambda": (0.0, True, None, False),
    "aux_conf.lambda_gamma": (0.0, True, None, False),
    "aux_conf.adaptive_alpha": (0.0, False, None, False),  # the adaptive GRL's ratio of gradient norms
    "aux_conf.adaptive_smoothing": (0.0, True, 1.0, False),  # its EMA factor (1 would never measure)
    "aux_conf.hidden": (1, True, None, False),
    "aux_conf.num_layers": (0, True, None, False),
    "aux_conf.dropout": (0.0, True, 1.0, False),
    "encoder_conf.dropout": (0.0, True, 1.0, False),
    "specaug.num_freq_masks": (0, True, None, False),
    "specaug.freq_width": (0, True, None, False),
    "specaug.num_time_masks": (0, True, None, False),
    "specaug.time_width": (0, True, None, False),
}


def _get(cfg: dict, key: str):
    node = cfg
    for k in key.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def validate_config(cfg: dict, source: str = "resolved config") -> None:
    """Raise ConfigError naming the key for a value of the right type but no meaning: non-finite or
    out-of-range numbers (a negative or NaN lr, lambda or weight; ``max_epochs < 1``; a dropout of 1)."""
    for key, (lo, lo_ok, hi, hi_ok) in _RANGES.items():
        v = _get(cfg, key)
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # absent, or a type the class it configures will reject with its own message
        if not math.isfinite(v):
            raise ConfigError(f"{source}: key '{key}' must be a finite number, got {v}")
        bad = v < lo or (v == lo and not lo_ok) or (hi is not None and (v > hi or (v == hi and not hi_ok)))
        if bad:
            rng = ("[" if lo_ok else "(") + f"{lo}, " + (f"{hi}" + ("]" if hi_ok else ")") if hi is not None
                                                          else "inf)")
            raise ConfigError(f"{source}: key '{key}' must lie in {rng}, got {v}")
    v = cfg.get("ctc_unalignable")
    if v is not None and v not in ("skip", "error"):
        raise ConfigError(f"{source}: key 'ctc_unalignable' must be one of skip, error; got {v!r}")
    v = cfg.get("precision")
    if v is not None and v not in ("fp32", "bf16", "fp16", "auto"):
        raise ConfigError(f"{source}: key 'precision' must be one of fp32, bf16, fp16, auto; got {v!r}")
    n, epochs = cfg.get("nbest_average") or 0, cfg.get("max_epochs") or 1
    if n > epochs:
        raise ConfigError(f"{source}: key 'nbest_average' ({n}) cannot exceed max_epochs ({epochs})")


def check_model_config(cfg: dict, input_dim: int) -> None:
    """Build the model once on the meta device (no memory, no files) so that encoder/aux settings the
    classes reject (unknown names, ``spk_layer`` beyond the encoder's depth) fail before anything is
    written."""
    from asr_gr.models.asr_model import build_model

    with torch.device("meta"):
        build_model(cfg, input_dim, vocab_size=4, num_speakers=max(2, int(cfg.get("num_speakers") or 2)))


def check_inputs(cmvn_path, train_dir) -> int:
    """The features' dimension (the model's input size), after checking that the CMVN stats have it
    too: a cmvn.ark of another set or front end is named as the culprit, not the features."""
    from asr_gr.data.dataset import FeatureDataset
    from asr_gr.features.cmvn import CMVN

    cmvn = CMVN.from_file(cmvn_path)
    dim = FeatureDataset.first_dim(train_dir) or cmvn.dim
    if cmvn.dim != dim:
        raise DataError(cmvn_path, None, f"CMVN stats have dimension {cmvn.dim}, but the features of "
                        f"{train_dir} have {dim}; use the cmvn.ark made from these features")
    return dim


def ctc_frames_needed(ids: list[int]) -> int:
    """Fewest output frames a CTC alignment of ``ids`` needs: one per token, plus a blank between
    each pair of equal neighbours."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def unalignable(encoder, lengths: list[int], targets: list[list[int]]) -> list[tuple[int, int, int]]:
    """Indices of utterances whose targets need more frames than the encoder outputs for their input
    length: ``[(index, tokens needed, output frames)]``. Uses the encoder's ``output_lengths``
    (length arithmetic only, no forward pass)."""
    if not lengths:
        return []
    out = encoder.output_lengths(torch.tensor(lengths, dtype=torch.long)).tolist()
    bad = []
    for i, (ids, n) in enumerate(zip(targets, out)):
        need = ctc_frames_needed(ids)
        if ids and need > n:
            bad.append((i, need, int(n)))
    return bad


def subsampling_of(encoder) -> int:
    """The encoder's time subsampling factor (for messages), measured on a long input."""
    n = 10000
    return max(1, round(n / int(encoder.output_lengths(torch.tensor([n]))[0])))


def filter_unalignable(dataset, encoder, policy: str, name) -> int:
    """Remove from ``dataset`` (a FeatureDataset with targets) the utterances CTC cannot align, with a
    warning that counts them and names one (``policy`` 'skip'), or raise DataError (``'error'``).
    Returns how many were removed."""
    targets = [dataset.targets.get(u, []) for u in dataset.utts]
    bad = unalignable(encoder, dataset.lengths, targets)
    if not bad:
        return 0
    i, need, frames = max(bad, key=lambda b: b[1] - b[2])
    msg = (f"{len(bad)} of {len(dataset.utts)} utterances of {name} cannot be aligned by CTC at subsampling "
           f"{subsampling_of(encoder)} (e.g. {dataset.utts[i]}: {need} tokens incl. blanks between repeats, "
           f"{frames} frames)")
    if policy == "error":
        raise DataError(name, None, msg + "; shorten their transcripts, remove them (utils/subset_data_dir.sh) "
                        "or set ctc_unalignable: skip")
    if len(bad) == len(dataset.utts):
        raise DataError(name, None, msg + "; none is left to train on")
    log.warning("%s; they are skipped (ctc_unalignable: error makes this an error)", msg)
    drop = {b[0] for b in bad}
    dataset.utts = [u for k, u in enumerate(dataset.utts) if k not in drop]
    dataset.lengths = [n for k, n in enumerate(dataset.lengths) if k not in drop]
    return len(bad)
