"""Rebuild a trained model from its exp dir (config.yaml, spk_list.txt and a checkpoint file)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asr_gr.config import load_yaml
from asr_gr.device import pick_device
from asr_gr.models.asr_model import build_model, complete_model_conf
from asr_gr.text.tokenizer import load_tokenizer
from asr_gr.utils import DataError

log = logging.getLogger(__name__)

# Speakers (one per line) whose classes only the untranscribed set of a semi-supervised system has.
UNTRANSCRIBED_SPK_LIST = "spk_list_untranscribed.txt"


def load_trained(exp_dir, checkpoint: str = "best.pt", device: str | None = "cpu"):
    """Return (model in eval mode on ``device``, resolved config, tokenizer, speaker -> class index).

    ``checkpoint`` names a file of the exp dir: best.pt, epoch<N>.pt, avg<N>.pt or checkpoint.pt.
    ``device`` None: cuda when the config has ``ngpu > 0`` and torch sees a GPU, else cpu
    (``asr_gr.device.pick_device``).
    """
    exp = Path(exp_dir)
    if not (exp / "config.yaml").exists():
        raise DataError(exp / "config.yaml", None, "not an exp dir of asr_gr.bin.train (no config.yaml)")
    cfg, filled = complete_model_conf(load_yaml(exp / "config.yaml"))
    if filled:  # written before config.yaml held every constructor value
        log.warning("note: %s lacks values the model was built with; using today's class defaults %s",
                    exp / "config.yaml", ", ".join(f"{k}={cfg[k.split('.')[0]][k.split('.')[1]]}" for k in filled))
    tok = load_tokenizer(cfg["token_list"])
    spk_list = (exp / "spk_list.txt").read_text(encoding="utf-8").split()
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
    model.to(pick_device(device, cfg.get("ngpu", 0) or 0)).eval()
    return model, cfg, tok, {s: i for i, s in enumerate(spk_list)}


def untranscribed_classes(exp_dir, spk2id: dict) -> list[int]:
    """Class indices of the speakers that only the untranscribed set had (none without such a set)."""
    path = Path(exp_dir) / UNTRANSCRIBED_SPK_LIST
    if not path.exists():
        return []
    names = path.read_text(encoding="utf-8").split()
    unknown = [n for n in names if n not in spk2id]
    if unknown:
        raise DataError(path, names.index(unknown[0]) + 1, f"speaker '{unknown[0]}' is not in spk_list.txt")
    return sorted(spk2id[n] for n in names)
