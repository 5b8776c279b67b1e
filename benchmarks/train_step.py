"""Trainer overhead and loader speed.

    python benchmarks/train_step.py [--dump-dir egs/mini_synth/asr1/dump/fbank/train ...]

Times one epoch of (a) our Trainer and (b) a bare loop of the same model's forward/backward/clip/step
on the same batches, already in memory; the ratio a/b is the trainer's overhead (goal <= 1.05). Also
times the data loader alone (batches/s) against training steps/s: the loader must never be the
bottleneck. Without --dump-dir it makes random 80-dim features (about 10 minutes of "audio").
SpecAugment is off in both loops so that they do the same work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from asr_gr.config import resolve
from asr_gr.data.dataset import collate
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer

ROOT = Path(__file__).resolve().parents[1]


def synthetic_setup(root: Path) -> dict:
    import kaldiio
    import numpy as np

    from asr_gr.data.kaldi_dir import write_data_dir, write_table
    from asr_gr.features.cmvn import write_global_cmvn
    from asr_gr.text.tokenizer import CharTokenizer, build_char_list

    rng = np.random.default_rng(0)
    d = root / "train"
    d.mkdir(parents=True)
    words = "THE RED CAR GOES LEFT AND RIGHT UNDER A BLUE SKY".split()
    text, u2s, wav, n = {}, {}, {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for i in range(260):
            utt = f"s{i % 20:02d}-{i:04d}"
            t = " ".join(rng.choice(words, size=rng.integers(4, 10)))
            frames = int(len(t) * 6.5)
            w(utt, rng.standard_normal((frames, 80)).astype(np.float32))
            text[utt], u2s[utt], wav[utt], n[utt] = t, utt[:3], "/dev/null", frames
    write_data_dir(d, wav_scp=wav, utt2spk=u2s, text=text)
    write_table(d / "utt2num_frames", n)
    write_global_cmvn(d / "feats.scp", root / "cmvn.ark")
    CharTokenizer(build_char_list(text.values())).save(root / "tokens.txt")
    return {"train_dir": d, "valid_dir": d, "token_list": root / "tokens.txt", "cmvn_path": root / "cmvn.ark"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-dir", help="a dump dir (feats.scp, text, utt2spk) to train on")
    ap.add_argument("--token-list")
    ap.add_argument("--cmvn")
    ap.add_argument("--config", default=str(ROOT / "egs/mini_synth/asr1/conf/train.yaml"))
    ap.add_argument("--aux", default="adversarial")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    if args.dump_dir:
        paths = {"train_dir": args.dump_dir, "valid_dir": args.dump_dir, "token_list": args.token_list,
                 "cmvn_path": args.cmvn}
    else:
        paths = synthetic_setup(tmp / "data")
    cfg = resolve(TRAIN_DEFAULTS, args.config, [(["aux"], args.aux), (["specaug"], None), (["max_epochs"], 1),
                                                (["num_threads"], args.threads)])

    # (c) the loader alone
    t = Trainer(cfg, tmp / "exp_loader", progress=False, **paths)
    loader = torch.utils.data.DataLoader(t.batch_source, batch_sampler=t.sampler, collate_fn=collate)
    t0 = time.perf_counter()
    batches = list(loader)
    load_s = time.perf_counter() - t0

    # (b) bare loop on the same batches, in memory
    bare = Trainer(cfg, tmp / "exp_bare", progress=False, **paths)
    model, optim = bare.model, bare.optim
    model.train()
    t0 = time.perf_counter()
    for b in batches:
        loss, _ = model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], b["spk"], progress=0.5)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optim.step()
    bare_s = time.perf_counter() - t0

    # (a) our trainer, one epoch (loading, logging, stats, scheduler; no validation, no checkpoint)
    ours = Trainer(cfg, tmp / "exp_trainer", progress=False, **paths)
    t0 = time.perf_counter()
    ours.train_epoch()
    ours_s = time.perf_counter() - t0

    n = len(batches)
    print(f"{'measure':<40}{'value':>12}")
    print(f"{'batches per epoch':<40}{n:>12d}")
    print(f"{'bare loop, s/step':<40}{bare_s / n:>12.4f}")
    print(f"{'trainer, s/step':<40}{ours_s / n:>12.4f}")
    print(f"{'trainer overhead (trainer / bare)':<40}{ours_s / bare_s:>12.3f}")
    print(f"{'loader, batches/s':<40}{n / load_s:>12.1f}")
    print(f"{'training, steps/s':<40}{n / ours_s:>12.2f}")
    print(f"{'loader time / training time':<40}{load_s / ours_s:>12.3f}")


if __name__ == "__main__":
    main()
