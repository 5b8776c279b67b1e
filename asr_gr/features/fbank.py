"""Kaldi-compatible log-mel filterbank features (torchaudio.compliance.kaldi) written as Kaldi ark/scp."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi
from tqdm import tqdm

from asr_gr.data.audio import iter_utterances
from asr_gr.data.kaldi_dir import read_table, table_line_numbers, write_table
from asr_gr.utils import DataError, atomic_path


@dataclass
class FbankConfig:
    num_mel_bins: int = 80
    sample_frequency: int = 16000
    frame_length: float = 25.0
    frame_shift: float = 10.0
    dither: float = 0.0

    def compute(self, samples: np.ndarray) -> np.ndarray:
        # Kaldi's fbank works on 16-bit-scaled samples; keep its scale so energies match compute-fbank-feats.
        wav = torch.from_numpy(samples).unsqueeze(0) * 32768.0
        feats = kaldi.fbank(wav, num_mel_bins=self.num_mel_bins, sample_frequency=self.sample_frequency,
                            frame_length=self.frame_length, frame_shift=self.frame_shift,
                            dither=self.dither, energy_floor=0.0)
        return feats.numpy()


def compute_fbank_dir(data_dir, out_dir, config: FbankConfig | None = None, progress: bool = True) -> int:
    """Extract features for every utterance of ``data_dir`` into ``out_dir``/feats.{ark,scp}.

    Writes utt2num_frames too. ark and scp are written under temporary names and renamed together
    at the end, so a killed run leaves no feats.scp pointing into a half-written ark.
    Returns the number of utterances.
    """
    config = config or FbankConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    wav_scp = data_dir / "wav.scp"
    table = read_table(wav_scp)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_frames = {}
    ark = (out_dir / "feats.ark").resolve()
    # Nested so the ark is renamed into place before the scp that points at it.
    with atomic_path(out_dir / "feats.scp") as tmp_scp, atomic_path(ark, suffix=".ark") as tmp_ark:
        with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as writer:
            for utt, samples, _ in tqdm(iter_utterances(data_dir, sample_rate=config.sample_frequency),
                                        total=len(table), desc=f"fbank {data_dir.name}",
                                        disable=not progress, unit="utt", mininterval=2):
                feats = config.compute(samples)
                if feats.shape[0] == 0:
                    raise DataError(wav_scp, table_line_numbers(wav_scp)[utt],
                                    f"utterance '{utt}' is shorter than one frame")
                writer(utt, feats)
                num_frames[utt] = feats.shape[0]
        # The scp names the temporary ark; point it at the final name before both are renamed.
        text = Path(tmp_scp).read_text(encoding="utf-8").replace(str(tmp_ark), str(ark))
        Path(tmp_scp).write_text(text, encoding="utf-8")
    write_table(out_dir / "utt2num_frames", num_frames)
    return len(table)


def fbank_config_dict(config: FbankConfig) -> dict:
    return asdict(config)
