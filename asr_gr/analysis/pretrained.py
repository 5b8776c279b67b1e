"""Pretrained self-supervised encoders (torchaudio wav2vec 2.0, HuBERT, WavLM) as subjects of the probe.

``load_pretrained(family, ckpt, config)``: ``family`` is ``wav2vec2``, ``hubert`` or ``wavlm``; ``ckpt`` a
local file (nothing is downloaded), read with ``torch.load(weights_only=True)``, holding either

* a plain state_dict of a torchaudio ``Wav2Vec2Model``: what ``torch.save(bundle.get_model().state_dict(),
  path)`` writes for a ``torchaudio.pipelines`` bundle, or the bundle's own weight file
  (``https://download.pytorch.org/torchaudio/models/<bundle._path>``), or what
  ``torchaudio.models.wav2vec2.utils.import_huggingface_model`` / ``import_fairseq_model`` give. The keys
  of the input-normalising wrapper that the large bundles' ``get_model()`` returns (``model.*``) and the
  ``weight_g``/``weight_v`` names of older weight-norm code are accepted; or
* a dict ``{"state_dict": {...}}`` with optionally ``"config"`` (as ``config`` below), ``"family"``,
  ``"normalize_waveform"`` and ``"sample_rate"``.

``config`` (``--pretrained-config``; default: the checkpoint dict's ``config``, else the family's base
model: ``wav2vec2_base``, ``hubert_base``, ``wavlm_base``) names the architecture:

* a ``torchaudio.pipelines`` bundle's name in any case (``WAV2VEC2_BASE``, ``hubert_large``,
  ``wavlm_base_plus``, ``WAV2VEC2_ASR_BASE_960H``, ...): its architecture, whether it was trained on
  normalised waveforms, and its sample rate (:func:`named_archs`). Every ``torchaudio.models`` factory
  of a fixed architecture (``wav2vec2_large_lv60k``, ``hubert_xlarge``, ``wavlm_base``, ...) has a bundle
  of the same name, so its name works too;
* a JSON or YAML file (or, in a checkpoint dict, a mapping) of the keyword arguments of
  ``torchaudio.models.wav2vec2_model`` (wav2vec2, hubert) or ``wavlm_model`` (wavlm), optionally with
  ``normalize_waveform`` (default false) and ``sample_rate`` (default 16000): an architecture of one's own.

A fine-tuned model's CTC head (``aux.*``) is dropped: the probe reads the encoder only. Before any weight is
built, the checkpoint's keys and shapes are checked against the architecture (built on the meta device),
so a checkpoint of another architecture is one line naming what does not fit.

Layers: 0 = the CNN feature encoder's output (before the feature projection), 1..L = the outputs of the L
transformer layers (``encoder.extract_features``, as ``Wav2Vec2Model.extract_features`` returns them).
Every utterance is run alone, unpadded: torchaudio's padding masks are not exact for the base models'
group-norm feature extractor (its GroupNorm normalises over time, padded samples included) and WavLM's
attention takes no padding mask at all, so an utterance's output would depend on what it is batched with.
Alone, it never does. Models trained on normalised waveforms (the bundles' ``_normalize_waveform``: the
large ones) get each utterance normalised to zero mean and unit variance over its own samples, as
torchaudio's wrapper does for a batch of one.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from asr_gr.utils import ConfigError, DataError

log = logging.getLogger(__name__)

FAMILIES = ("wav2vec2", "hubert", "wavlm")
MODEL_TYPE = {"wav2vec2": "Wav2Vec2", "hubert": "Wav2Vec2", "wavlm": "WavLM"}  # family -> torchaudio's type
DEFAULT_CONFIG = {"wav2vec2": "wav2vec2_base", "hubert": "hubert_base", "wavlm": "wavlm_base"}
EXTRA_KEYS = ("normalize_waveform", "sample_rate")  # beside the constructor's arguments
# parameter names of weight norm: torch.nn.utils.weight_norm (older torchaudio) and its parametrization
WEIGHT_NORM_ALIASES = ((".weight_g", ".parametrizations.weight.original0"),
                       (".weight_v", ".parametrizations.weight.original1"))


def _generic(model_type: str):
    from torchaudio.models import wav2vec2_model, wavlm_model

    return {"Wav2Vec2": wav2vec2_model, "WavLM": wavlm_model}[model_type]


def named_archs() -> dict:
    """{name: (model type, constructor kwargs, normalize_waveform, sample rate)} of every wav2vec 2.0
    family bundle of ``torchaudio.pipelines`` (name = the bundle's name in lower case)."""
    import torchaudio.pipelines as pipelines

    out = {}
    for name in dir(pipelines):
        b = getattr(pipelines, name)
        if isinstance(b, pipelines.Wav2Vec2Bundle):
            out[name.lower()] = (b._model_type, dict(b._params), bool(b._normalize_waveform), int(b.sample_rate))
    return out


@dataclass
class Arch:
    """An architecture to build: ``build()`` makes the model (no CTC head)."""
    name: str  # what it came from: a bundle's name, or a config file
    family: str
    kwargs: dict  # the arguments of torchaudio.models.wav2vec2_model / wavlm_model
    normalize_waveform: bool
    sample_rate: int

    def build(self):
        return _generic(MODEL_TYPE[self.family])(**self.kwargs)

    def describe(self) -> dict:
        return {"name": self.name, "kwargs": self.kwargs}


def _other_family(family: str, name: str) -> str | None:
    return next((f for f in FAMILIES if f != family and name.startswith(f + "_")), None)


def _kwargs_config(family: str, mapping: dict, where: str) -> tuple[dict, dict]:
    """(constructor kwargs, extras) of a config mapping; ConfigError naming ``where`` and the bad key."""
    params = inspect.signature(_generic(MODEL_TYPE[family])).parameters
    fn = "wavlm_model" if MODEL_TYPE[family] == "WavLM" else "wav2vec2_model"
    bad = next((k for k in mapping if k not in params and k not in EXTRA_KEYS), None)
    if bad is not None:
        raise ConfigError(f"{where}: unknown key '{bad}' (the keyword arguments of torchaudio.models.{fn}, "
                          f"or {', '.join(EXTRA_KEYS)})")
    missing = [k for k in params if k not in mapping and k != "aux_num_out"]
    if missing:
        raise ConfigError(f"{where}: {len(missing)} argument(s) of torchaudio.models.{fn} missing (e.g. "
                          f"'{missing[0]}'); or give a bundle's or factory's name (e.g. {DEFAULT_CONFIG[family]})")
    kwargs = {k: v for k, v in mapping.items() if k in params}
    if kwargs.get("extractor_conv_layer_config") is not None:  # YAML/JSON lists -> tuples
        kwargs["extractor_conv_layer_config"] = [tuple(x) for x in kwargs["extractor_conv_layer_config"]]
    kwargs["aux_num_out"] = None  # the probe reads the encoder; a CTC head is dropped
    return kwargs, {k: mapping[k] for k in EXTRA_KEYS if k in mapping}


def resolve_arch(family: str, config=None, ckpt: dict | None = None) -> Arch:
    """The architecture of ``family`` that ``config`` names (a name, a JSON/YAML file, or a mapping;
    None: the checkpoint dict's ``config``, else the family's base). ``ckpt``: the checkpoint dict's
    other entries (family, normalize_waveform, sample_rate). See the module docstring."""
    from asr_gr.config import load_yaml

    ckpt = ckpt or {}
    if family not in FAMILIES:
        raise ConfigError(f"--pretrained: unknown family '{family}' (one of {', '.join(FAMILIES)})")
    stored = ckpt.get("family")
    if stored is not None and str(stored).lower() != family:
        raise ConfigError(f"--pretrained {family}: the checkpoint says it is a {stored} model")
    where = "--pretrained-config"
    if config is None:
        config, where = ckpt.get("config"), "the checkpoint's 'config'"
    if config is None:
        config, where = DEFAULT_CONFIG[family], f"--pretrained {family}'s default config"
    extras = {}
    if isinstance(config, str) and (Path(config).suffix.lower() in (".json", ".yaml", ".yml")
                                    or Path(config).is_file()):
        where = config
        config = load_yaml(config)  # JSON is YAML
    if isinstance(config, dict):
        kwargs, extras = _kwargs_config(family, config, where)
        arch = Arch("checkpoint config" if where.startswith("the checkpoint") else where, family, kwargs, False,
                    16000)
    elif isinstance(config, str):
        name, named = config.lower(), named_archs()
        other = _other_family(family, name)
        if other is not None and name in named:
            raise ConfigError(f"{where} {config} is a {other} architecture, not --pretrained {family}")
        if name in named:
            model_type, params, normalize, rate = named[name]
            if model_type != MODEL_TYPE[family]:
                raise ConfigError(f"{where} {config} builds a torchaudio {model_type} model, not "
                                  f"--pretrained {family}'s {MODEL_TYPE[family]}")
            arch = Arch(name, family, {**params, "aux_num_out": None}, normalize, rate)
        else:
            known = [n for n in sorted(named) if _other_family(family, n) is None and named[n][0] == MODEL_TYPE[family]]
            raise ConfigError(f"{where}: '{config}' is neither a JSON/YAML file nor a known {family} architecture "
                              f"(a torchaudio.pipelines bundle: {', '.join(known)})")
    else:
        raise ConfigError(f"{where}: a {type(config).__name__}, not a name, a file or a mapping")
    # the checkpoint's own, then the config file's (explicit) values
    for source in (ckpt, extras):
        if source.get("normalize_waveform") is not None:
            arch.normalize_waveform = bool(source["normalize_waveform"])
        if source.get("sample_rate") is not None:
            arch.sample_rate = int(source["sample_rate"])
    return arch


@dataclass
class PretrainedEncoder:
    model: torch.nn.Module  # torchaudio Wav2Vec2Model, eval mode
    arch: Arch
    path: str

    @property
    def num_layers(self) -> int:
        return len(self.model.encoder.transformer.layers)

    @property
    def sample_rate(self) -> int:
        return self.arch.sample_rate

    @property
    def normalize_waveform(self) -> bool:
        return self.arch.normalize_waveform

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def frames(self, num_samples: int) -> int:
        """Frames the CNN feature encoder makes of ``num_samples`` samples (< 1: too short)."""
        n = num_samples
        for block in self.model.feature_extractor.conv_layers:
            n = (n - block.kernel_size) // block.stride + 1
        return n

    def describe(self) -> dict:
        return {"pretrained": self.path, "family": self.arch.family, "arch": self.arch.name,
                "layers": self.num_layers + 1, "layer0": "CNN feature encoder output",
                "sample_rate": self.sample_rate, "normalize_waveform": self.normalize_waveform,
                "config": self.arch.describe()}

    @torch.no_grad()
    def layer_outputs(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """[(T_l, D_l)] for l = 0 (CNN output), 1..L (transformer layers) of one waveform (samples,)."""
        x = wave[None]
        if self.normalize_waveform:
            x = F.layer_norm(x, x.shape)
        feats, _ = self.model.feature_extractor(x, None)
        return [feats[0]] + [y[0] for y in self.model.encoder.extract_features(feats, None)]


def _fit_keys(path, sd: dict, expected: dict, what: str) -> dict:
    """``sd`` with the wrapper prefix stripped, the CTC head dropped and weight-norm names mapped to
    ``expected``'s; a DataError naming what does not fit otherwise."""
    if sd and all(k.startswith("model.") for k in sd):  # the _normalize_waveform wrapper's keys
        sd = {k[len("model."):]: v for k, v in sd.items()}
    aux = [k for k in sd if k.startswith("aux.")]
    if aux:
        log.info("%s: dropping the CTC head (%s); the probe reads the encoder only", path, ", ".join(aux))
        sd = {k: v for k, v in sd.items() if not k.startswith("aux.")}
    for k in [k for k in sd if k not in expected]:
        for a, b in WEIGHT_NORM_ALIASES:
            for x, y in ((a, b), (b, a)):
                if k.endswith(x) and k[:-len(x)] + y in expected:
                    sd[k[:-len(x)] + y] = sd.pop(k)
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    other = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or other:
        parts = []
        if missing:
            parts.append(f"{len(missing)} weight(s) missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown (e.g. {unexpected[0]})")
        if other:
            k = other[0]
            parts.append(f"{len(other)} of another shape (e.g. {k}: {tuple(sd[k].shape)} in the checkpoint, "
                         f"{expected[k]} in the architecture)")
        raise DataError(path, None, f"does not fit {what}: " + "; ".join(parts)
                        + " (name its architecture with --pretrained-config)")
    return sd


def load_pretrained(family: str, path, config=None, device="cpu") -> PretrainedEncoder:
    """The encoder of a local checkpoint (formats: module docstring), in eval mode on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "checkpoint does not exist" if not path.exists() else "is not a file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types; the first line says what is wrong
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(path, None, f"cannot load checkpoint: {first}") from None
    if not isinstance(ck, dict):
        raise DataError(path, None, f"holds a {type(ck).__name__}, not a state_dict or a dict with a 'state_dict'")
    if "model" in ck and "optim" in ck:
        raise DataError(path, None, "is an asr_gr training checkpoint: probe its exp dir with --exp-dir instead")
    stored, sd = ({k: v for k, v in ck.items() if k != "state_dict"}, ck["state_dict"]) if "state_dict" in ck \
        else ({}, ck)
    if not isinstance(sd, dict) or not sd:
        raise DataError(path, None, "its state_dict is empty or not a dict")
    bad = next((k for k, v in sd.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise DataError(path, None, f"not a state_dict: '{bad}' holds a {type(sd[bad]).__name__}, not a tensor "
                        "(a dict with a config needs the weights under the key 'state_dict')")
    arch = resolve_arch(family, config, stored)
    try:
        with torch.device("meta"):  # shapes only: nothing allocated, nothing initialised
            meta = arch.build()
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"{arch.name}: does not build a torchaudio {family} model: {first}") from None
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    what = (f"the {family} architecture {arch.name} ({len(meta.encoder.transformer.layers)} transformer layers "
            f"of {meta.encoder.feature_projection.projection.out_features})")
    del meta
    sd = _fit_keys(path, dict(sd), expected, what)
    model = arch.build()
    model.load_state_dict(sd)
    model.to(device).eval()
    return PretrainedEncoder(model, arch, str(path))


def check_wave_dirs(data_dirs) -> None:
    """Each of ``data_dirs`` has a wav.scp (checked before a model is loaded)."""
    for d in map(Path, data_dirs):
        if not (d / "wav.scp").exists():
            raise DataError(d / "wav.scp", None, "does not exist: a pretrained encoder reads the waveforms of a "
                            "Kaldi data dir (data/<set>, not the fbank dump)")


@torch.no_grad()
def pooled_waveform_layers(enc: PretrainedEncoder, data_dirs, precision: str = "fp32"):
    """Mean and standard deviation over time of every layer (0 = CNN output) of every utterance of the
    Kaldi data dirs (wav.scp, with segments if present; audio resampled to the model's rate), each
    utterance run alone. Returns (sorted utterance ids, [tensor (N, 2 D_l)], {utt: speaker})."""
    from tqdm import tqdm

    from asr_gr.data.audio import iter_utterances
    from asr_gr.data.kaldi_dir import read_table, speaker_labels, table_line_numbers
    from asr_gr.device import autocast
    from asr_gr.models.speaker import masked_stats

    check_wave_dirs(data_dirs)
    device = enc.device
    pooled, spk_of = {}, {}
    for d in map(Path, data_dirs):
        table = d / ("segments" if (d / "segments").exists() else "wav.scp")
        utts = list(read_table(table))
        spk_of.update(speaker_labels(d, utts))
        lines = None
        for utt, samples, _ in tqdm(iter_utterances(d, sample_rate=enc.sample_rate, resample=True), total=len(utts),
                                    desc=f"{enc.arch.name} on {d.name}", unit="utt", disable=None):
            if utt in pooled:
                raise DataError(d / "utt2spk", None, f"utterance '{utt}' occurs in more than one probe set")
            if enc.frames(len(samples)) < 1:
                lines = lines or table_line_numbers(table)
                raise DataError(table, lines.get(utt), f"utterance '{utt}' is {len(samples) / enc.sample_rate:.3f} s: "
                                f"too short for the feature encoder of '{enc.arch.name}'")
            wave = torch.from_numpy(samples).to(device)
            with autocast(device, precision):
                outs = enc.layer_outputs(wave)
            pooled[utt] = [masked_stats(x.float()[None], torch.tensor([x.shape[0]], device=device))[0].cpu()
                           for x in outs]
    order = sorted(pooled)
    layers = [torch.stack([pooled[u][layer] for u in order]) for layer in range(enc.num_layers + 1)]
    return order, layers, {u: spk_of[u] for u in order}
