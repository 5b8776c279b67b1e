"""A trained system, loaded once, and what runs on it: the one way decoding (stage 4), speaker
accuracy, probing (stage 6) and ``transcribe`` reach a trained model.

    from asr_gr.inference import Speech2Text
    s2t = Speech2Text.from_exp("exp/train_adversarial", checkpoint="best.pt")
    s2t("a.wav").text                                   # any format libsndfile reads, any sample rate
    out = s2t(samples, fs=8000, layers=True, speaker=True)
    out.text, out.layers[k], out.spk_posteriors, out.speakers

A trained system is its exp dir: ``config.yaml`` (resolved config, with the token list, the CMVN stats
and, since stage 2 records them, the fbank options and sample rate ``fs``), ``spk_list.txt`` (speaker
classes), ``spk_list_untranscribed.txt`` (semi-supervised: the classes only the untranscribed set had)
and a checkpoint file.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from asr_gr.config import load_yaml
from asr_gr.data.dataset import BucketSampler, FeatureDataset, collate, normalise
from asr_gr.device import pick_device
from asr_gr.features.cmvn import CMVN
from asr_gr.features.fbank import FbankConfig, read_fbank_config
from asr_gr.models.asr_model import ASRModel, build_model, complete_model_conf
from asr_gr.text.tokenizer import load_tokenizer
from asr_gr.utils import DataError

log = logging.getLogger(__name__)

# Speakers (one per line) whose classes only the untranscribed set of a semi-supervised system has.
UNTRANSCRIBED_SPK_LIST = "spk_list_untranscribed.txt"
DEFAULT_FS = 16000  # the rate of exp dirs trained before the rate was recorded


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """CTC best path: argmax per frame, merge repeats, drop blanks. ``log_probs`` is (B, T, V)."""
    best = log_probs.argmax(-1)
    out = []
    for b in range(best.shape[0]):
        seq = best[b, : int(lens[b])]
        if seq.numel() == 0:
            out.append([])
            continue
        keep = torch.ones_like(seq, dtype=torch.bool)
        keep[1:] = seq[1:] != seq[:-1]
        seq = seq[keep]
        out.append(seq[seq != blank].tolist())
    return out


# ------------------------------------------------------------------------ speaker classes and masking

def untranscribed_only_classes(spk2id: dict, transcribed_speakers) -> list[int]:
    """Class indices of the speakers that only an untranscribed set has (semi-supervised training).

    Utterances of training speakers are scored with these classes masked: they are frequent in
    training (a small untranscribed set is cycled), so an unmasked argmax measures that prior more
    than the speakers, and the masked accuracy compares with systems trained without the set (same
    classes, same chance)."""
    seen = set(transcribed_speakers)
    return sorted(i for s, i in spk2id.items() if s not in seen)


def read_untranscribed_classes(exp_dir, spk2id: dict) -> list[int]:
    """The classes of ``exp_dir``/spk_list_untranscribed.txt (none without such a file)."""
    path = Path(exp_dir) / UNTRANSCRIBED_SPK_LIST
    if not path.exists():
        return []
    names = path.read_text(encoding="utf-8").split()
    unknown = [n for n in names if n not in spk2id]
    if unknown:
        raise DataError(path, names.index(unknown[0]) + 1, f"speaker '{unknown[0]}' is not in spk_list.txt")
    return sorted(spk2id[n] for n in names)


def classes_to_mask(untranscribed: list[int], set_classes) -> list[int]:
    """The classes masked when scoring a set whose utterances have classes ``set_classes``: the
    untranscribed-only ones, unless the set has utterances of such speakers (then every class counts)."""
    return [] if set(untranscribed) & set(set_classes) else list(untranscribed)


@torch.no_grad()
def speaker_accuracy(model: ASRModel, dataset: FeatureDataset, batch_frames: int,
                     exclude=()) -> tuple[float, float]:
    """Accuracies (%) of the model's aux speaker head on ``dataset`` (whose speakers it was trained on),
    from one pass: (with the classes in ``exclude`` never predicted, over all classes); the two are
    equal when nothing is excluded (see :func:`untranscribed_only_classes`)."""
    model.eval()
    device = next(model.parameters()).device
    correct = correct_all = total = 0
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=BucketSampler(dataset.lengths, batch_frames, shuffle=False), collate_fn=collate)
    for batch in loader:
        _, lens, layers = model.encoder(batch["feats"].to(device), batch["feat_lens"].to(device))
        logits = speaker_logits(model, layers, lens)
        correct_all += int((logits.argmax(-1).cpu() == batch["spk"]).sum())
        if len(exclude):
            logits[:, list(exclude)] = float("-inf")
        correct += int((logits.argmax(-1).cpu() == batch["spk"]).sum())
        total += len(batch["utts"])
    return 100.0 * correct / max(1, total), 100.0 * correct_all / max(1, total)


def speaker_logits(model: ASRModel, layers, lens) -> torch.Tensor:
    """(B, classes) logits of the model's aux speaker head from a forward pass's per-layer outputs."""
    head = model.aux_head
    return head.classifier(layers[head.layer_index], lens)


# ------------------------------------------------------------------------------------ a trained system

@dataclass
class TrainedSystem:
    """Everything of an exp dir that running the model needs, loaded once."""

    exp_dir: Path
    checkpoint: str
    model: ASRModel
    config: dict
    tokenizer: object
    spk2id: dict
    cmvn: CMVN
    fbank: FbankConfig  # the features the model was trained on (fs = fbank.sample_frequency)
    untranscribed: list = field(default_factory=list)  # classes only an untranscribed set had

    @property
    def fs(self) -> int:
        return self.fbank.sample_frequency

    @property
    def speakers(self) -> list[str]:
        return list(self.spk2id)

    def dataset(self, data_dir, **kwargs) -> FeatureDataset:
        """A dump dir's utterances as this model sees them (CMVN, utt_cmn, speaker classes). Features
        that stage 2 extracted at another rate or with other options than the model's are an error."""
        made = read_fbank_config(data_dir)
        if made is not None and made != self.fbank:
            raise DataError(Path(data_dir) / "fbank.json", None,
                            f"features extracted with {_describe_fbank(made)}; the model {self.exp_dir} was "
                            f"trained on {_describe_fbank(self.fbank)} (rerun stage 2 with the same --fs "
                            "and --num-mel-bins)")
        kwargs.setdefault("spk2id", self.spk2id)
        return FeatureDataset(data_dir, cmvn=self.cmvn, input_dim=self.config["input_dim"],
                              utt_cmn=self.config.get("utt_cmn", False), **kwargs)

    def has_speaker_report(self, dataset: FeatureDataset) -> bool:
        """Whether :meth:`speaker_report` measures ``dataset``: the model has a speaker head and every
        speaker of the set is one of its classes."""
        return self.model.aux_head is not None and all(dataset.spk_label[u] in self.spk2id for u in dataset.utts)

    def speaker_report(self, dataset: FeatureDataset, batch_frames: int, logits: dict | None = None) -> dict | None:
        """Accuracy of the aux speaker head on ``dataset`` as stage 4's spk_acc.json: None when the model
        has no head or the set has speakers it was not trained on. For a semi-supervised system the
        untranscribed-only classes are masked (see :func:`classes_to_mask`), the unmasked figure beside.
        ``logits`` {utt: the head's logits}, when the decoder's forward pass already computed them
        (:func:`speaker_logits`), saves a second pass."""
        if not self.has_speaker_report(dataset):
            return None
        mask = classes_to_mask(self.untranscribed, {self.spk2id[dataset.spk_label[u]] for u in dataset.utts})
        if logits is None:
            acc, acc_all = speaker_accuracy(self.model, dataset, batch_frames, exclude=mask)
        else:
            missing = [u for u in dataset.utts if u not in logits]
            if missing:
                raise ValueError(f"no speaker logits for utterance {missing[0]}")
            truth = [self.spk2id[dataset.spk_label[u]] for u in dataset.utts]
            full = torch.stack([torch.as_tensor(logits[u]).float() for u in dataset.utts])
            acc_all = 100.0 * float((full.argmax(-1) == torch.tensor(truth)).float().mean())
            if mask:
                full[:, mask] = float("-inf")
            acc = 100.0 * float((full.argmax(-1) == torch.tensor(truth)).float().mean())
        n = len(self.spk2id) - len(mask)
        info = {"acc_spk": round(acc, 2), "num_utts": len(dataset), "chance": round(100.0 / n, 2),
                "num_classes": n}
        if mask:
            info["acc_spk_all_classes"] = round(acc_all, 2)
            info["masked_untranscribed_classes"] = len(mask)
        return info


def _describe_fbank(c: FbankConfig) -> str:
    return f"{c.num_mel_bins} mel bins at {c.sample_frequency} Hz"


def keep_cmvn(exp_dir, cmvn) -> Path:
    """``exp_dir``/cmvn.ark, a copy of the CMVN stats the model is trained with: stage 2 may later be
    rerun with other options (e.g. ``--fs``), and the exp dir must still decode as it was trained. A
    rerun into the same exp dir with other stats is an error naming both files."""
    from asr_gr.utils import atomic_path

    src, dst = Path(cmvn), Path(exp_dir) / "cmvn.ark"
    if not src.is_file():
        raise DataError(src, None, "CMVN stats do not exist (has stage 2 finished?)")
    if dst.exists():
        if dst.read_bytes() != src.read_bytes():
            raise DataError(src, None, f"differs from {dst}, the CMVN stats this exp dir was trained with (was "
                                       "stage 2 rerun with other options?); train into a new --tag")
        return dst
    with atomic_path(dst) as tmp:
        tmp.write_bytes(src.read_bytes())
    return dst


def frontend_record(fbank: FbankConfig | None) -> dict:
    """The config.yaml entries of the features a model is trained on: ``fs`` and ``frontend``."""
    return {} if fbank is None else {"fs": fbank.sample_frequency, "frontend": asdict(fbank)}


def load_trained(exp_dir, checkpoint: str = "best.pt", device: str | None = "cpu") -> TrainedSystem:
    """Load the model of ``exp_dir`` (in eval mode on ``device``) with its config, tokens, CMVN stats and
    speaker classes. ``checkpoint`` names a file of the exp dir: best.pt, epoch<N>.pt, avg<N>.pt or
    checkpoint.pt."""
    exp = Path(exp_dir)
    if not (exp / "config.yaml").exists():
        raise DataError(exp / "config.yaml", None, "not an exp dir of asr_gr.bin.train (no config.yaml)")
    cfg, filled = complete_model_conf(load_yaml(exp / "config.yaml"))
    for key in ("token_list", "cmvn"):  # relative: a file of the exp dir (an unpacked asr_gr.pack archive)
        if cfg.get(key) and not Path(cfg[key]).is_absolute() and (exp / cfg[key]).is_file():
            cfg[key] = str(exp / cfg[key])
    if filled:  # written before config.yaml held every constructor value
        log.warning("note: %s lacks values the model was built with; using today's class defaults %s",
                    exp / "config.yaml", ", ".join(f"{k}={cfg[k.split('.')[0]][k.split('.')[1]]}" for k in filled))
    tok = load_tokenizer(cfg["token_list"])
    spk_path = exp / "spk_list.txt"
    if not spk_path.exists():
        raise DataError(spk_path, None, "does not exist (has stage 3 started?)")
    spk2id = {s: i for i, s in enumerate(spk_path.read_text(encoding="utf-8").split())}
    model = build_model(cfg, cfg["input_dim"], cfg["vocab_size"], cfg["num_speakers"])
    ckpt = exp / checkpoint
    if not ckpt.exists():
        raise DataError(ckpt, None, "checkpoint does not exist (has stage 3 finished?)")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(ckpt, None, f"cannot load checkpoint: {str(e).splitlines()[0]}") from None
    if "model" in state and "optim" in state:  # a full training checkpoint
        state = state["model"]
    model.load_state_dict(state)
    model.to(pick_device(device, cfg.get("ngpu", 0) or 0)).eval()  # None: cuda if ngpu > 0 and seen
    if "frontend" in cfg:
        fbank = FbankConfig(**cfg["frontend"])
    else:  # trained before stage 2 recorded its options: stage 2's defaults then
        fbank = FbankConfig(num_mel_bins=cfg["input_dim"], sample_frequency=int(cfg.get("fs", DEFAULT_FS)))
    return TrainedSystem(exp, checkpoint, model, cfg, tok, spk2id, CMVN.from_file(cfg["cmvn"]), fbank,
                         read_untranscribed_classes(exp, spk2id))


# ------------------------------------------------------------------------------------------ Speech2Text

@dataclass
class Hypothesis:
    text: str
    token_ids: list
    num_frames: int  # input feature frames
    layers: list | None = None  # layer 0: normalised input features (T, D); layer k: encoder layer k
    spk_posteriors: np.ndarray | None = None  # (num_speakers,) of the aux head, every class
    speakers: list | None = None  # the speaker of each posterior

    @property
    def speaker(self) -> str | None:
        """The aux head's most probable training speaker (None without ``speaker=True``)."""
        if self.spk_posteriors is None:
            return None
        return self.speakers[int(np.argmax(self.spk_posteriors))]


class Speech2Text:
    """Audio in, text out, with the features, normalisation and model of stage 4.

    ``decoder`` maps CTC log-probabilities (B, T, V) and lengths to token id sequences, or to texts (a
    word-level search such as the flashlight decoder; the hypothesis's token_ids are then its text's
    tokens); default CTC greedy search (stage 4's ``--beam-size 1``); pass e.g.
    ``functools.partial(beam_search_batch, beam_size=8)`` from :mod:`asr_gr.decode.beam` for a beam search.
    :meth:`from_pretrained` loads a system packed by ``asr_gr.bin.pack`` with its decode defaults.
    """

    def __init__(self, system: TrainedSystem, decoder: Callable | None = None):
        self.system = system
        self.decoder = decoder or greedy_decode
        if "frontend" not in system.config:
            log.warning("%s/config.yaml records no fbank options (features made elsewhere, or before stage 2 "
                        "recorded them): assuming stage 2's defaults, %s", system.exp_dir,
                        _describe_fbank(system.fbank))

    @classmethod
    def from_exp(cls, exp_dir, checkpoint: str = "best.pt", *, device: str = "cpu",
                 decoder: Callable | None = None) -> "Speech2Text":
        return cls(load_trained(exp_dir, checkpoint, device), decoder)

    @classmethod
    def from_pretrained(cls, archive, cache_dir=None, device: str | None = None, *,
                        decoder: Callable | None = None, beam_size: int | None = None,
                        lm_weight: float | None = None, word_score: float | None = None,
                        use_lm: bool = True) -> "Speech2Text":
        """The system packed into ``archive`` by ``asr_gr.bin.pack`` (a .tar.gz), which needs nothing of the
        exp dir or data dirs it was packed from. It is unpacked once into ``cache_dir``/<the archive's
        sha256>/ (default cache_dir: $ASR_GR_CACHE/packed, else ~/.cache/asr_gr/packed) and every member's sha256 is
        checked on each load (a corrupt member is a DataError naming it). It decodes with the archive's
        decode defaults (its packed LM and lexicon, if any): ``beam_size``, ``lm_weight`` and
        ``word_score`` override them, ``use_lm=False`` leaves the LM, lexicon and word score out (a
        search of the acoustic scores only: greedy with ``beam_size=1``), ``decoder`` replaces the search.
        ``device`` None: cuda when the config has ngpu > 0 and a GPU is visible, else cpu. The archive's
        meta.yaml is the result's ``meta``."""
        from asr_gr.pack import load_packed  # (the search it builds is asr_gr.decode's, as stage 4's)

        return load_packed(archive, cache_dir, device, decoder=decoder, beam_size=beam_size,
                           lm_weight=lm_weight, word_score=word_score, use_lm=use_lm)

    @property
    def fs(self) -> int:
        """The sample rate the model's features are computed at; other rates are resampled to it."""
        return self.system.fs

    def load(self, audio, fs: int | None = None) -> np.ndarray:
        """Samples at the model's rate from a file path, or from a waveform array at ``fs`` Hz."""
        from asr_gr.data.audio import as_mono_float, load_audio_file, resample_audio

        if isinstance(audio, (str, Path)):
            if fs is not None:
                raise ValueError("fs is for waveform arrays; a file's rate is read from the file")
            return load_audio_file(audio, sample_rate=self.fs)[0]
        if fs is None:
            raise ValueError("a waveform array needs its sample rate: s2t(samples, fs=16000)")
        return resample_audio(as_mono_float(audio), int(fs), self.fs)

    def features(self, audio, fs: int | None = None) -> np.ndarray:
        """The normalised features (frames x dim) the model reads: stage 2's fbank, then stage 4's CMVN."""
        samples = self.load(audio, fs)
        feats = self.system.fbank.compute(samples)
        if feats.shape[0] == 0:
            where = str(audio) if isinstance(audio, (str, Path)) else "the waveform"
            raise DataError(where, None, f"audio of {len(samples) / self.fs:.3f} s is shorter than one frame "
                                         f"({self.system.fbank.frame_length:g} ms)")
        return normalise(feats, self.system.cmvn, self.system.config.get("utt_cmn", False))

    @torch.no_grad()
    def __call__(self, audio, fs: int | None = None, *, layers: bool = False,
                 speaker: bool = False) -> Hypothesis:
        """Transcribe a file path, or a waveform array with its rate ``fs``. ``layers=True`` adds every
        layer's output, ``speaker=True`` the aux speaker head's posteriors (models with a head only)."""
        model = self.system.model
        if speaker and model.aux_head is None:
            raise ValueError(f"{self.system.exp_dir} has no speaker head (aux none)")
        feats = torch.from_numpy(self.features(audio, fs))
        device = next(model.parameters()).device
        x, lens = feats[None].to(device), torch.tensor([feats.shape[0]], device=device)
        lp, out_lens, outs = model.ctc_log_probs(x, lens)
        ids = self.decoder(lp, out_lens)[0]
        if isinstance(ids, str):  # a word-level search gives text
            hyp = Hypothesis(ids, list(self.system.tokenizer.encode(ids)), feats.shape[0])
        else:
            hyp = Hypothesis(self.system.tokenizer.decode(ids), list(ids), feats.shape[0])
        if layers:
            hyp.layers = [feats.numpy()] + [o[0, : int(out_lens[0])].float().cpu().numpy() for o in outs]
        if speaker:
            head = model.aux_head
            scores = head.classifier(outs[head.layer_index], out_lens)
            hyp.spk_posteriors = torch.softmax(scores.float(), -1)[0].cpu().numpy()
            hyp.speakers = self.system.speakers
        return hyp
