"""Training throughput of the LibriSpeech config (egs/librispeech/asr1/conf/train.yaml) on a GPU.

    python benchmarks/gpu_train.py [--device cuda] [--steps 300] [--precision bf16] [--num-workers 4]
    python benchmarks/gpu_train.py --device cpu --steps 3 --utts 24 --batch-frames 4000   # smoke test

Runs our Trainer (the real loop: DataLoader workers, pinned memory, autocast, clipping, scheduler) for
about ``--steps`` optimiser steps after one warm-up epoch, and prints steps/s, audio-hours trained per
GPU-hour (= seconds of audio per second of wall time), the fraction of the loop's time spent waiting
for the data loader, and the peak GPU memory.

Data: the recipe's dump of train_clean_100 when it exists (or ``--dump-dir`` with ``--token-list`` and
``--cmvn``); otherwise synthetic 80-dim features with LibriSpeech-like lengths (mean 12.7 s, at most
17.5 s; about 15 characters per second; 40 speakers) written as a Kaldi feats.scp/ark, so that the
loader does the same work as on real features. The first line of the output says which.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from asr_gr.config import resolve
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "librispeech" / "asr1"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"


def synthetic_librispeech(root: Path, utts: int, seed: int = 0) -> dict:
    """A dump dir of random features with LibriSpeech's utterance lengths; returns the Trainer's paths."""
    import kaldiio
    import numpy as np

    from asr_gr.data.kaldi_dir import write_data_dir, write_table
    from asr_gr.features.cmvn import write_global_cmvn
    from asr_gr.text.tokenizer import CharTokenizer, build_char_list

    rng = np.random.default_rng(seed)
    d = root / "train"
    d.mkdir(parents=True)
    text, u2s, wav, n = {}, {}, {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for i in range(utts):
            spk = f"{i % 40:03d}"
            utt = f"{spk}-{i:06d}"
            frames = int(100 * np.clip(rng.normal(12.7, 3.5), 1.5, 17.5))
            chars = rng.choice(list(LETTERS + " " * 5), size=max(1, frames * 15 // 100))
            words = "".join(chars).split()
            w(utt, rng.standard_normal((frames, 80)).astype(np.float32))
            text[utt], u2s[utt], wav[utt], n[utt] = " ".join(words) or "A", spk, "/dev/null", frames
    write_data_dir(d, wav_scp=wav, utt2spk=u2s, text=text)
    write_table(d / "utt2num_frames", n)
    write_global_cmvn(d / "feats.scp", root / "cmvn.ark")
    CharTokenizer(build_char_list(text.values())).save(root / "tokens.txt")
    return {"train_dir": d, "valid_dir": d, "token_list": root / "tokens.txt", "cmvn_path": root / "cmvn.ark"}


def recipe_dump() -> dict | None:
    d = RECIPE / "dump" / "fbank" / "train_clean_100"
    tokens = RECIPE / "data" / "token_list" / "char" / "tokens.txt"
    if (d / "feats.scp").exists() and (d / "cmvn.ark").exists() and tokens.exists():
        return {"train_dir": d, "valid_dir": d, "token_list": tokens, "cmvn_path": d / "cmvn.ark"}
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--steps", type=int, default=300, help="timed optimiser steps (whole epochs, at least this)")
    ap.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"], help="default: the config's")
    ap.add_argument("--num-workers", type=int, default=None, help="default: the config's (4)")
    ap.add_argument("--batch-frames", type=int, default=None, help="default: the config's (120000)")
    ap.add_argument("--aux", default="adversarial", help="none, mtl or adversarial")
    ap.add_argument("--config", default=str(RECIPE / "conf" / "train.yaml"))
    ap.add_argument("--dump-dir", help="a dump dir to train on (with --token-list and --cmvn)")
    ap.add_argument("--token-list")
    ap.add_argument("--cmvn")
    ap.add_argument("--utts", type=int, default=2000, help="synthetic utterances (~12.7 s each)")
    ap.add_argument("--no-warmup", action="store_true", help="time from the first step (no warm-up epoch)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_train."))
    if args.dump_dir:
        paths, source = {"train_dir": args.dump_dir, "valid_dir": args.dump_dir, "token_list": args.token_list,
                         "cmvn_path": args.cmvn}, f"dump dir {args.dump_dir}"
    elif recipe_dump() is not None:
        paths, source = recipe_dump(), "LibriSpeech train_clean_100 (the recipe's dump)"
    else:
        t0 = time.perf_counter()
        paths = synthetic_librispeech(tmp / "data", args.utts)
        source = (f"synthetic LibriSpeech-like features ({args.utts} utterances, written in "
                  f"{time.perf_counter() - t0:.0f} s; no LibriSpeech dump found)")
    over = [(["ngpu"], 1 if args.device == "cuda" else 0), (["aux"], args.aux), (["save_every_steps"], 0),
            (["log_every_steps"], 0), (["max_epochs"], 1000)]
    if args.precision:
        over.append((["precision"], args.precision))
    if args.num_workers is not None:
        over.append((["num_workers"], args.num_workers))
    if args.batch_frames:
        over.append((["batch_frames"], args.batch_frames))
    cfg = resolve(TRAIN_DEFAULTS, args.config, over)
    t = Trainer(cfg, tmp / "exp", progress=False, **paths)
    cuda = t.device.type == "cuda"
    name = torch.cuda.get_device_name(t.device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"data: {source}")
    print(f"device: {name}; config {args.config}; {sum(p.numel() for p in t.model.parameters()) / 1e6:.1f} M "
          f"parameters; {t.steps_per_epoch} batches per epoch")

    def epoch() -> tuple[float, float, int, int]:
        t.sampler.set_epoch(t.epoch)  # (train_epoch sets it again) this epoch's batches, unpadded frames:
        frames = sum(t.train_set.lengths[i] for b in t.sampler.rank_order() for i in b)
        steps0 = t.step
        start = time.perf_counter()
        t.train_epoch()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        t.epoch += 1
        t.batch_in_epoch, t.epoch_sums = 0, {}
        return wall, t.data_wait, frames, t.step - steps0

    if cuda:
        torch.cuda.reset_peak_memory_stats(t.device)
    if not args.no_warmup:
        w_wall, _, _, w_steps = epoch()
        print(f"warm-up epoch: {w_steps} steps in {w_wall:.1f} s (not counted)")
    wall = wait = 0.0
    frames = steps = 0
    while steps < args.steps:
        a, b, c, d = epoch()
        wall, wait, frames, steps = wall + a, wait + b, frames + c, steps + d
    audio_h = frames * 0.01 / 3600
    peak = f"{torch.cuda.max_memory_allocated(t.device) / 2**30:.1f}" if cuda else "-"
    cols = ("device", "precision", "workers", "batch_frames", "steps", "steps/s", "audio h per GPU h",
            "data wait", "peak GiB")
    vals = (t.device.type, cfg["precision"], str(cfg["num_workers"]), str(cfg["batch_frames"]), str(steps),
            f"{steps / wall:.3f}", f"{audio_h / (wall / 3600):.1f}", f"{100 * wait / wall:.1f} %", peak)
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("-" * (len(c) + 1) + ":" for c in cols) + "|")
    print("| " + " | ".join(v.rjust(len(c)) for v, c in zip(vals, cols)) + " |")
    print(f"({steps} steps, {audio_h:.2f} h of audio in {wall:.1f} s; load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
