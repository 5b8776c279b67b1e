"""Generate the mini_synth corpus: espeak-ng voices, 16 kHz WAVs and Kaldi data dirs.

    python -m asr_gr.bin.make_mini_synth --out downloads/mini_synth --data data
    python -m asr_gr.bin.make_mini_synth --out /tmp/ms --data /tmp/ms/data --tiny
"""

from __future__ import annotations

import argparse
import logging
import time

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.corpora.mini_synth import TINY_OPTIONS, make_corpus
from asr_gr.utils import die, setup_logging

SIZE_OPTIONS = ("num_train_spk", "num_dev_spk", "num_test_spk", "num_probe_spk", "num_untranscribed_spk",
                "utts_per_spk", "heldout_per_spk", "eval_utts_per_spk", "probe_utts_per_spk",
                "untranscribed_utts_per_spk", "unseen_accent_test", "unseen_accent_untranscribed")


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="where wav/, speakers.tsv and .done go")
    ap.add_argument("--data", required=True, help="parent of the Kaldi data dirs (train, dev, ...)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nj", type=int, default=2, help="worker processes")
    ap.add_argument("--tiny", action="store_true", help="a tiny corpus for tests: "
                    + ", ".join(f"{k}={v}" for k, v in TINY_OPTIONS.items()) + " (options below override)")
    ap.add_argument("--num-train-spk", type=int, help="training speakers (default 72)")
    ap.add_argument("--num-dev-spk", type=int, help="unseen dev speakers (default 6)")
    ap.add_argument("--num-test-spk", type=int, help="unseen test speakers (default 40)")
    ap.add_argument("--num-probe-spk", type=int, help="unseen speakers of the probe set (default 24)")
    ap.add_argument("--num-untranscribed-spk", type=int, help="speakers of the untranscribed set (default 72)")
    ap.add_argument("--unseen-accent-test", type=int,
                    help="test speakers with the accent training never hears (default 6)")
    ap.add_argument("--unseen-accent-untranscribed", type=int,
                    help="untranscribed speakers with the accent training never hears (default 6)")
    ap.add_argument("--utts-per-spk", type=int, help="training utterances per training speaker (default 14)")
    ap.add_argument("--heldout-per-spk", type=int,
                    help="train_heldout utterances per training speaker (default 2)")
    ap.add_argument("--eval-utts-per-spk", type=int, help="utterances per dev/test speaker (default 30)")
    ap.add_argument("--probe-utts-per-spk", type=int, help="utterances per probe speaker (default 12)")
    ap.add_argument("--untranscribed-utts-per-spk", type=int,
                    help="utterances per untranscribed speaker (default 10)")
    args = ap.parse_args(argv)
    setup_logging()
    options = dict(TINY_OPTIONS) if args.tiny else {}
    options.update({k: getattr(args, k) for k in SIZE_OPTIONS if getattr(args, k) is not None})
    start = time.time()
    try:
        summary = make_corpus(args.out, args.data, seed=args.seed, nj=args.nj, **options)
    except (RuntimeError, ValueError) as e:
        die(str(e))
    logging.info("mini_synth ready in %.1f s", time.time() - start)
    write_record(args.data, "asr_gr.bin.make_mini_synth", argv, args)
    print(f"{'set':<15}{'speakers':>9}{'utts':>7}{'minutes':>9}")
    for name, row in summary.items():
        print(f"{name:<15}{row['speakers']:>9}{row['utterances']:>7}{row['minutes']:>9.2f}")


if __name__ == "__main__":
    main()
