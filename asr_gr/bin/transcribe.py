"""Transcribe audio files with a trained system: one line ``file<TAB>text`` per file, in order.

    python -m asr_gr.bin.transcribe --exp-dir exp/train_adversarial a.wav b.flac ...
        [--checkpoint best.pt] [--beam-size 8] [--fs 8000]
    python -m asr_gr.bin.transcribe --model adversarial.tar.gz a.wav ...     # packed by asr_gr.bin.pack

With --model, the archive's decode defaults apply (its LM, if packed with one); --beam-size overrides
its beam. The archive is unpacked once into --cache-dir (default ~/.cache/asr_gr/packed).

The features are computed as in stage 2 (fbank at the model's sample rate; audio at another rate is
resampled with torchaudio) and normalised with the exp dir's CMVN stats, so a file gives the same
hypothesis as stage 4 gives its utterance. A file that cannot be read is an ``ERROR:`` line on stderr;
the other files are still transcribed, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import functools
import sys

from asr_gr.bin.common import main_guard
from asr_gr.inference import Speech2Text
from asr_gr.utils import ConfigError, DataError, setup_logging


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp-dir")
    src.add_argument("--model", help="an archive of asr_gr.bin.pack (.tar.gz)")
    ap.add_argument("--cache-dir", default=None, help="--model: where archives are unpacked")
    ap.add_argument("--checkpoint", default="best.pt",
                    help="--exp-dir: its file best.pt, epochN.pt, ... (an archive holds one checkpoint)")
    ap.add_argument("--beam-size", type=int, default=None,
                    help="1: CTC greedy; >1: CTC prefix beam search (default 1; --model: the archive's)")
    ap.add_argument("--fs", type=int, default=None,
                    help="the model's sample rate (Hz), as a check: an error if the exp dir records another; "
                         "every file is resampled to it")
    ap.add_argument("--num-threads", type=int, default=0)
    ap.add_argument("files", nargs="+", metavar="AUDIO")
    args = ap.parse_args(argv)
    setup_logging()
    if args.beam_size is not None and args.beam_size < 1:
        raise ConfigError(f"--beam-size: must be >= 1, got {args.beam_size}")
    if args.num_threads:
        import torch
        torch.set_num_threads(args.num_threads)
    if args.model:
        s2t = Speech2Text.from_pretrained(args.model, args.cache_dir, "cpu", beam_size=args.beam_size)
    else:
        decoder = None
        if (args.beam_size or 1) > 1:
            from asr_gr.decode.beam import beam_search_batch
            decoder = functools.partial(beam_search_batch, beam_size=args.beam_size)
        s2t = Speech2Text.from_exp(args.exp_dir, args.checkpoint, decoder=decoder)
    if args.fs is not None and args.fs != s2t.fs:
        raise ConfigError(f"--fs {args.fs}: the model of {args.exp_dir or args.model} was trained on features at "
                          f"{s2t.fs} Hz "
                          f"(its config.yaml); files are resampled to {s2t.fs} Hz")
    failed = 0
    for path in args.files:
        try:
            text = s2t(path).text
        except (DataError, OSError) as e:
            failed += 1
            reason = str(e) if isinstance(e, DataError) else f"{path}: {e.strerror or e}"
            print(f"ERROR: {reason}", file=sys.stderr, flush=True)
            continue
        print(f"{path}\t{text}", flush=True)
    if failed:
        print(f"ERROR: {failed} of {len(args.files)} files could not be transcribed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
