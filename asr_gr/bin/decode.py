"""Stage 4: CTC greedy decoding of a dump dir with a trained model.

    python -m asr_gr.bin.decode --exp-dir exp/train_none --data-dir dump/fbank/test \\
        --out-dir exp/train_none/decode_test [--checkpoint best.pt]

Writes OUT/hyp.txt (Kaldi text format) and OUT/rtf.txt; when the model has a speaker head and every
speaker of the set was seen in training, also OUT/spk_acc.json (accuracy of the head).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from asr_gr.bin.common import main_guard
from asr_gr.config import load_yaml
from asr_gr.data.dataset import BucketSampler, FeatureDataset, collate
from asr_gr.decode.ctc import greedy_decode
from asr_gr.features.cmvn import CMVN
from asr_gr.models.asr_model import build_model
from asr_gr.text.tokenizer import CharTokenizer
from asr_gr.train.trainer import load_checkpoint, speaker_accuracy
from asr_gr.utils import DataError, atomic_write_text, setup_logging


def load_trained(exp_dir, checkpoint: str = "best.pt"):
    """Rebuild the model of ``exp_dir`` from its config.yaml and load ``checkpoint``."""
    exp = Path(exp_dir)
    cfg = load_yaml(exp / "config.yaml")
    tok = CharTokenizer.from_file(cfg["token_list"])
    spk_list = (exp / "spk_list.txt").read_text(encoding="utf-8").split()
    model = build_model(cfg, cfg["input_dim"], cfg["vocab_size"], cfg["num_speakers"])
    ckpt = exp / checkpoint
    if not ckpt.exists():
        raise DataError(ckpt, None, "checkpoint does not exist (has stage 3 finished?)")
    try:
        state = load_checkpoint(ckpt)
    except Exception as e:
        raise DataError(ckpt, None, f"cannot load checkpoint: {str(e).splitlines()[0]}") from None
    model.load_state_dict(state["model"] if "model" in state and "optim" in state else state)
    model.eval()
    return model, cfg, tok, {s: i for i, s in enumerate(spk_list)}


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir", required=True)
    ap.add_argument("--data-dir", required=True, help="dump dir with feats.scp")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--checkpoint", default="best.pt", help="file in the exp dir: best.pt, epochN.pt, ...")
    ap.add_argument("--batch-frames", type=int, default=40000)
    ap.add_argument("--num-threads", type=int, default=0)
    args = ap.parse_args(argv)
    setup_logging()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    model, cfg, tok, spk2id = load_trained(args.exp_dir, args.checkpoint)
    cmvn = CMVN.from_file(cfg["cmvn"])
    ds = FeatureDataset(args.data_dir, cmvn=cmvn, input_dim=cfg["input_dim"], spk2id=spk2id,
                        utt_cmn=cfg.get("utt_cmn", False))
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=BucketSampler(ds.lengths, args.batch_frames, shuffle=False), collate_fn=collate)
    hyps: dict[str, str] = {}
    t0 = time.time()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"decode {Path(args.data_dir).name}", unit="batch", mininterval=2):
            lp, lens, _ = model.ctc_log_probs(batch["feats"], batch["feat_lens"])
            for utt, seq in zip(batch["utts"], greedy_decode(lp, lens)):
                hyps[utt] = tok.decode(seq)
    elapsed = time.time() - t0
    audio_seconds = sum(ds.lengths) * 0.01  # 10 ms frame shift
    out = Path(args.out_dir)
    atomic_write_text(out / "hyp.txt", "".join(f"{u} {hyps[u]}\n" for u in sorted(hyps)))
    rtf = elapsed / max(audio_seconds, 1e-9)
    atomic_write_text(out / "rtf.txt", f"decoding seconds {elapsed:.2f}\naudio seconds {audio_seconds:.2f}\n"
                                       f"RTF {rtf:.5f}\n")
    msg = f"decoded {len(hyps)} utterances (RTF {rtf:.4f}) into {out / 'hyp.txt'}"
    if model.aux_head is not None and all(ds.spk_label[u] in spk2id for u in ds.utts):
        acc = speaker_accuracy(model, ds, args.batch_frames)
        atomic_write_text(out / "spk_acc.json", json.dumps({"acc_spk": round(acc, 2), "num_utts": len(ds),
                                                            "chance": round(100.0 / len(spk2id), 2)}) + "\n")
        msg += f"; speaker accuracy of the aux head {acc:.1f}%"
    print(msg)


if __name__ == "__main__":
    main()
