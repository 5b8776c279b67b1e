"""Tiny random feature dump dirs for fast trainer tests (no audio, no corpus)."""

from pathlib import Path

import kaldiio
import numpy as np

from asr_gr.data.kaldi_dir import write_data_dir, write_table
from asr_gr.features.cmvn import write_global_cmvn
from asr_gr.text.tokenizer import CharTokenizer, build_char_list

WORDS = ["GO", "STOP", "LEFT", "RIGHT", "UP", "DOWN"]


def make_dump(root, name="train", n_spk=3, utts_per_spk=6, dim=13, seed=0, prefix="spk") -> Path:
    rng = np.random.default_rng(seed)
    d = Path(root) / name
    d.mkdir(parents=True)
    text, u2s, wav = {}, {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for s in range(n_spk):
            for u in range(utts_per_spk):
                utt = f"{prefix}{s}-{u:02d}"
                words = list(rng.choice(WORDS, size=rng.integers(1, 4)))
                frames = 12 * sum(len(x) + 1 for x in words)
                w(utt, (rng.standard_normal((frames, dim)) + s).astype(np.float32))
                text[utt], u2s[utt], wav[utt] = " ".join(words), f"{prefix}{s}", "/dev/null"
    write_data_dir(d, wav_scp=wav, utt2spk=u2s, text=text)
    (d / "wav.scp").unlink()
    n = {k: v.shape[0] for k, v in kaldiio.load_scp(str(d / "feats.scp")).items()}
    write_table(d / "utt2num_frames", n)
    return d


def make_setup(root) -> dict:
    """train + dev dump dirs, token list and CMVN stats; returns the Trainer's path arguments."""
    root = Path(root)
    train = make_dump(root, "train")
    dev = make_dump(root, "dev", n_spk=2, utts_per_spk=3, seed=1)
    write_global_cmvn(train / "feats.scp", root / "cmvn.ark")
    CharTokenizer(build_char_list(" ".join(WORDS))).save(root / "tokens.txt")
    return {"train_dir": train, "valid_dir": dev, "heldout_dir": train, "token_list": root / "tokens.txt",
            "cmvn_path": root / "cmvn.ark"}


TINY_CONFIG = {"encoder_conf": {"channels": [16, 16], "kernels": [3, 3], "stride": 2, "dropout": 0.1},
               "aux": "adversarial", "aux_conf": {"spk_layer": 1, "hidden": 8}, "batch_frames": 600,
               "max_epochs": 2, "warmup_steps": 2, "num_threads": 1}
