"""Trainer overhead and loader speed.

    python benchmarks/train_step.py [--dump-dir egs/mini_synth/asr1/dump/fbank/train ...]

Times one epoch of (a) our Trainer and (b) a bare loop of the same model's forward/backward/clip/step
on the same batches, already in memory; the ratio a/b is the trainer's overhead (goal <= 1.05). Also
times the data loader alone (batches/s) against training steps/s: the loader must never be the
bottleneck. Without --dump-dir it makes random 80-dim features (about 10 minutes of "audio").
SpecAugment is off in both loops so that they do the same work. One row per ``--precision`` (fp32,
bf16 and fp16 autocast on the CPU; weights stay fp32).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from asr_gr.config import resolve
from asr_gr.data.dataset import collate
from asr_gr.device import autocast
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-dir", help="a dump dir (feats.scp, text, utt2spk) to train on")
    ap.add_argument("--token-list")
    ap.add_argument("--cmvn")
    ap.add_argument("--config", default=str(ROOT / "egs/mini_synth/asr1/conf/train.yaml"))
    ap.add_argument("--aux", default="adversarial")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"],
                    help="precisions to time (one row each)")
    ap.add_argument("--max-batches", type=int, default=0, help="time only the first N batches (0: an epoch)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    if args.dump_dir:
        paths = {"train_dir": args.dump_dir, "valid_dir": args.dump_dir, "token_list": args.token_list,
                 "cmvn_path": args.cmvn}
    else:
        paths = synthetic_setup(tmp / "data")
    base = [(["aux"], args.aux), (["specaug"], None), (["max_epochs"], 1), (["num_threads"], args.threads)]

    def trainer(name, precision):
        t = Trainer(resolve(TRAIN_DEFAULTS, args.config, base + [(["precision"], precision)]), tmp / name,
                    progress=False, **paths)
        if args.max_batches:
            t.sampler.batches = t.sampler.batches[: args.max_batches]
            t.steps_per_epoch = t.sampler.batches_per_epoch
        return t

    # (c) the loader alone
    t = trainer("exp_loader", "fp32")
    loader = torch.utils.data.DataLoader(t.batch_source, batch_sampler=t.sampler, collate_fn=collate)
    t0 = time.perf_counter()
    batches = list(loader)
    load_s = time.perf_counter() - t0
    n = len(batches)

    rows = []
    for precision in args.precision:
        # (b) bare loop on the same batches, in memory
        bare = trainer(f"exp_bare_{precision}", precision)
        model, optim = bare.model, bare.optim
        model.train()
        t0 = time.perf_counter()
        for b in batches:
            with autocast("cpu", precision):
                loss, _ = model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"], b["spk"], progress=0.5)
            optim.zero_grad(set_to_none=True)
            bare.scaler.scale(loss).backward()
            bare.scaler.unscale_(optim)
            torch.nn.utils.clip_grad_norm_(model.parameters(), bare.config["grad_clip"])
            bare.scaler.step(optim)
            bare.scaler.update()
        bare_s = time.perf_counter() - t0

        # (a) our trainer, one epoch (loading, logging, stats, scheduler; no validation, no checkpoint)
        ours = trainer(f"exp_trainer_{precision}", precision)
        t0 = time.perf_counter()
        stats = ours.train_epoch()
        ours_s = time.perf_counter() - t0
        rows.append((precision, bare_s / n, ours_s / n, ours_s / bare_s, n / ours_s, load_s / ours_s,
                     stats.get("train_loss_ctc", float("nan"))))

    print(f"{n} batches of at most {t.config['batch_frames']} frames; loader alone {n / load_s:.1f} batches/s; "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"| {'precision':<9} | {'bare s/step':>11} | {'trainer s/step':>14} | {'overhead':>8} | {'steps/s':>7} "
          f"| {'loader/train':>12} | {'loss_ctc':>8} |")
    print(f"|{'-' * 11}|{'-' * 13}:|{'-' * 16}:|{'-' * 10}:|{'-' * 9}:|{'-' * 14}:|{'-' * 10}:|")
    for p, bare, ours, ratio, sps, lt, loss in rows:
        print(f"| {p:<9} | {bare:>11.4f} | {ours:>14.4f} | {ratio:>8.3f} | {sps:>7.2f} | {lt:>12.3f} | {loss:>8.3f} |")
    if len(rows) > 1 and rows[0][0] == "fp32":
        for r in rows[1:]:
            print(f"speed-up of {r[0]} over fp32 (trainer s/step): {rows[0][2] / r[2]:.2f}x")


if __name__ == "__main__":
    main()
