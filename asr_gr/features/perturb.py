"""Speed perturbation of a data dir, as ESPnet's ``perturb_data_dir_speed.sh`` (Kaldi's ``sox speed``).

For a factor f the waveform is resampled so that it plays f times as fast: duration / f, tempo and
pitch both scaled by f. Utterance ``u`` of speaker ``s`` becomes ``sp<f>-u`` of speaker ``sp<f>-s``
(f = 1 keeps the originals), written as an augmented copy of the data dir whose perturbed audio lies
in ``<out>/wav/``. ``utt2spkid`` (the speaker classifier's label) keeps the real speaker: a
perturbed copy is a new CMVN speaker in utt2spk, not a new person.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr_gr.data.audio import iter_utterances
from asr_gr.data.kaldi_dir import read_table, write_data_dir
from asr_gr.utils import atomic_path


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """``samples`` played ``factor`` times as fast (length / factor), as ``sox speed factor`` does."""
    if factor == 1.0:
        return samples
    frac = Fraction(factor).limit_denominator(1000)
    # Read the samples as if recorded at factor x rate, then bring them back to the original rate.
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                      orig_freq=frac.numerator, new_freq=frac.denominator)
    return out.numpy()


def factor_prefix(factor: float) -> str:
    return f"sp{factor:g}-"


def speed_perturb_data_dir(data_dir, out_dir, factors, *, sample_rate: int = 16000,
                           resample: bool = False) -> Path:
    """Write ``out_dir``: the union over ``factors`` of speed-perturbed copies of ``data_dir``.

    Tables copied and renamed: utt2spk (speakers prefixed), text, spk2gender, utt2spkid (values
    unchanged; derived from utt2spk when absent), utt2dur (scaled). Returns ``out_dir``.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    utt2spk = read_table(data_dir / "utt2spk")
    text = read_table(data_dir / "text", allow_empty_value=True) if (data_dir / "text").exists() else None
    spk2gender = read_table(data_dir / "spk2gender") if (data_dir / "spk2gender").exists() else None
    utt2spkid = read_table(data_dir / "utt2spkid") if (data_dir / "utt2spkid").exists() else dict(utt2spk)
    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    kw = {"resample": True} if resample else {}

    wav_scp, new_u2s, new_text, new_u2sid, new_g, u2d = {}, {}, {}, {}, {}, {}
    for utt, samples, _ in iter_utterances(data_dir, sample_rate=sample_rate, **kw):
        for f in factors:
            p = "" if f == 1.0 else factor_prefix(f)
            new = p + utt
            y = speed_perturb(samples, f)
            path = (wav_dir / f"{new}.wav").resolve()  # float WAV: no requantisation
            with atomic_path(path, suffix=".wav") as tmp:
                sf.write(str(tmp), y, sample_rate, subtype="FLOAT", format="WAV")
            wav_scp[new] = str(path)
            new_u2s[new] = p + utt2spk[utt]
            new_u2sid[new] = utt2spkid[utt]
            u2d[new] = len(y) / sample_rate
            if text is not None and utt in text:
                new_text[new] = text[utt]
            if spk2gender is not None and utt2spk[utt] in spk2gender:
                new_g[p + utt2spk[utt]] = spk2gender[utt2spk[utt]]
    write_data_dir(out_dir, wav_scp=wav_scp, utt2spk=new_u2s, text=new_text if text is not None else None,
                   spk2gender=new_g if spk2gender is not None else None, utt2spkid=new_u2sid, utt2dur=u2d)
    return out_dir
