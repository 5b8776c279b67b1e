"""Fbank speed: real-time factors of three implementations of Kaldi's fbank on the same audio, and of
the whole stage 2 (read audio, fbank, write ark/scp).

    python benchmarks/fbank.py [--data-dir data/train] [--seconds 120] [--repeat 3] [--replicate K]

Rows (audio already in memory unless noted; best of --repeat runs):
  asr_gr batched        FbankConfig.compute_batch over all utterances (torch threads = T)
  torchaudio per-utt    torchaudio.compliance.kaldi.fbank, one call per utterance (torch threads = T)
  kaldi-native-fbank    knf.OnlineFbank per utterance from Python (T Python threads over halves)
  stage 2 --nj N        compute_fbank_dir: read WAVs, extract, write split arks + feats.scp

"x RT" = seconds of audio per second of wall time; "per thread" divides by T (or N).
Without --data-dir it synthesises about --seconds of speech-like audio (1-5 s utterances).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from asr_gr.data.audio import iter_utterances  # noqa: E402
from asr_gr.features.fbank import FbankConfig, compute_fbank_dir  # noqa: E402

SR = 16000


def synth_dir(root: Path, seconds: float) -> Path:
    from test_fbank import speechlike

    d = root / "data"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    total, i, rows = 0.0, 0, []
    while total < seconds:
        dur = float(rng.uniform(1.0, 5.0))
        p = root / f"u{i:04d}.wav"
        sf.write(p, speechlike(dur, i), SR)
        rows.append((f"spk{i % 4}-u{i:04d}", str(p), f"spk{i % 4}"))
        total += dur
        i += 1
    rows.sort()
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, s in rows))
    return d


def copy_dir(src: Path, dst: Path, replicate: int) -> Path:
    """wav.scp and utt2spk of ``src`` (no segments), every utterance listed ``replicate`` times."""
    from asr_gr.data.kaldi_dir import read_table, write_table

    if (src / "segments").exists():
        sys.exit(f"{src}: a data dir with segments is not supported by this benchmark")
    wav, u2s = read_table(src / "wav.scp"), read_table(src / "utt2spk")
    dst.mkdir(parents=True)
    tag = (lambda k, u: f"{u2s[u]}-r{k}-{u}") if replicate > 1 else (lambda k, u: u)
    write_table(dst / "wav.scp", {tag(k, u): p for k in range(replicate) for u, p in wav.items()})
    write_table(dst / "utt2spk", {tag(k, u): u2s[u] for k in range(replicate) for u in wav})
    return dst


def best_of(fn, repeat: int) -> float:
    fn()  # warm-up (FFT plans, allocations)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def knf_fbank(samples: np.ndarray, num_bins: int) -> np.ndarray:
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = num_bins
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(SR, (samples * 32768.0).tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)], dtype=np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--num-mel-bins", type=int, default=80)
    ap.add_argument("--replicate", type=int, default=1,
                    help="list every utterance K times (a larger input from the same files)")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="fbank_bench."))
    try:
        # a copy of the tables: stage 2 --nj writes DIR/split<nj>utt/ into the data dir
        data_dir = copy_dir(Path(args.data_dir) if args.data_dir else synth_dir(tmp / "synth", args.seconds),
                            tmp / "data", args.replicate)
        cfg = FbankConfig(num_mel_bins=args.num_mel_bins)
        # Stage 2 first, from a lean parent: its workers are forked, and a parent that holds all the
        # audio and has run multi-threaded torch makes every fork slower.
        torch.set_num_threads(1)
        stage2_times = {}
        for nj in (1, 2):
            def stage2():
                out = tmp / f"dump{nj}"
                shutil.rmtree(out, ignore_errors=True)
                compute_fbank_dir(data_dir, out, cfg, nj=nj)
            stage2_times[nj] = best_of(stage2, max(1, args.repeat - 1))
        audio = [s for _, s, _ in iter_utterances(data_dir, sample_rate=SR)]
        secs = sum(len(a) for a in audio) / SR
        print(f"{len(audio)} utterances, {secs:.1f} s of audio, {args.num_mel_bins} mel bins, "
              f"torch {torch.__version__}, best of {args.repeat}; {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f} at the start\n")
        rows = []

        def add(name, threads, seconds):
            rows.append((name, threads, seconds, secs / seconds, secs / seconds / threads))

        for nj, seconds in stage2_times.items():
            add(f"stage 2 --nj {nj}", nj, seconds)
        stage2_rows, rows = rows, []

        import torchaudio.compliance.kaldi as kaldi

        def torchaudio_all():
            for a in audio:
                kaldi.fbank(torch.from_numpy(a).unsqueeze(0) * 32768.0, num_mel_bins=args.num_mel_bins,
                            dither=0.0, energy_floor=0.0)

        for threads in (1, 2):
            torch.set_num_threads(threads)
            add("asr_gr batched", threads, best_of(lambda: cfg.compute_batch(audio), args.repeat))
            add("torchaudio per-utt", threads, best_of(torchaudio_all, args.repeat))
            halves = [audio[: len(audio) // 2], audio[len(audio) // 2:]] if threads == 2 else [audio]

            def knf_all():
                with ThreadPoolExecutor(len(halves)) as ex:
                    list(ex.map(lambda part: [knf_fbank(a, args.num_mel_bins) for a in part], halves))

            add("kaldi-native-fbank", threads, best_of(knf_all, max(1, args.repeat - 2)))
        rows.extend(stage2_rows)

        print(f"| {'method':22s} | threads | seconds | x RT    | x RT per thread |")
        print(f"|{'-' * 24}|---------|---------|---------|-----------------|")
        for name, t, s, rt, rtt in rows:
            print(f"| {name:22s} | {t:7d} | {s:7.3f} | {rt:7.0f} | {rtt:15.0f} |")
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end (other processes distort the 2-thread rows)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
