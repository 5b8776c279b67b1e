"""Stage 4: CTC decoding of a dump dir with a trained model (greedy or prefix beam search + word LM).

    python -m asr_gr.bin.decode --exp-dir exp/train_none --data-dir dump/fbank/test \\
        --out-dir exp/train_none/decode_test [--checkpoint best.pt] [--beam-size 8 --lm lm.arpa \\
        --lm-weight 0.5 --word-bonus 1.0] [--nj 2] [--dump-layers utts.txt]

Writes OUT/hyp.txt (Kaldi text format) and OUT/rtf.txt (real-time factor); with --dump-layers the
encoder's per-layer outputs (layer 0 = input features) of the listed utterances as
OUT/layers/layer<k>.ark/.scp; when the model has a speaker head and every speaker of the set was seen
in training, also OUT/spk_acc.json (accuracy of the head; for a semi-supervised system over the
training speakers' classes, those only the untranscribed set had masked, with the unmasked figure
beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from asr_gr.bin.common import main_guard
from asr_gr.decode.runner import DecodeOptions, _build_dataset, decode_dir, decode_part
from asr_gr.launch.jobs import run_parts_through, strip_option
from asr_gr.lock import dir_lock
from asr_gr.train.restore import load_trained, untranscribed_classes
from asr_gr.train.trainer import speaker_accuracy
from asr_gr.utils import DataError, atomic_write_text, setup_logging


def _read_utt_list(path) -> list[str]:
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, "utterance list does not exist")
    return [ln.split()[0] for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir", required=True)
    ap.add_argument("--data-dir", required=True, help="dump dir with feats.scp")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--checkpoint", default="best.pt", help="file in the exp dir: best.pt, epochN.pt, ...")
    ap.add_argument("--batch-frames", type=int, default=40000)
    ap.add_argument("--num-threads", type=int, default=0)
    ap.add_argument("--beam-size", type=int, default=1, help="1: greedy; >1: CTC prefix beam search")
    ap.add_argument("--lm", default=None, help="word n-gram LM (ARPA file) for the beam search")
    ap.add_argument("--lm-weight", type=float, default=0.5)
    ap.add_argument("--word-bonus", type=float, default=0.0)
    ap.add_argument("--nj", type=int, default=1,
                    help="parallel worker processes, one per utils/split_data.sh --per-utt part")
    ap.add_argument("--cmd", default=None,
                    help='job backend for the --nj parts, e.g. "utils/run.pl" or "utils/slurm.pl --config '
                         'conf/slurm.conf" (default: worker processes here); logs in OUT/log/decode.J.log')
    ap.add_argument("--part", type=int, default=None,
                    help="only part J of --nj, into OUT/split<nj>/hyp.J.txt (what each backend job runs)")
    ap.add_argument("--dump-layers", default=None, metavar="UTT_LIST_FILE",
                    help="also write every encoder layer's output of these utterances to OUT/layers/")
    args = ap.parse_args(argv)
    setup_logging()
    if args.beam_size < 1 or args.nj < 1:
        raise DataError("command line", None, "--beam-size and --nj must be >= 1")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    opts = DecodeOptions(checkpoint=args.checkpoint, beam_size=args.beam_size, lm=args.lm,
                         lm_weight=args.lm_weight, word_bonus=args.word_bonus, batch_frames=args.batch_frames,
                         num_threads=args.num_threads,
                         dump_utts=_read_utt_list(args.dump_layers) if args.dump_layers else [])
    if args.part is not None:  # one job of a backend; the driver holds the decode dir's lock and merges
        n = decode_part(args.exp_dir, args.data_dir, args.out_dir, opts, args.nj, args.part)
        print(f"decoded {n} utterances (part {args.part} of {args.nj})")
        return
    run_jobs = None
    if args.cmd:
        raw = list(sys.argv[1:] if argv is None else argv)

        def run_jobs(nj):
            run_parts_through(args.cmd, nj, Path(args.out_dir) / "log" / "decode.JOB.log", "asr_gr.bin.decode",
                              strip_option(strip_option(raw, "--cmd"), "--nj") + ["--nj", str(nj)])
    out = Path(args.out_dir)
    with dir_lock(out, "decode dir"):
        _decode(args, opts, out, run_jobs)


def _decode(args, opts, out, run_jobs=None):
    res = decode_dir(args.exp_dir, args.data_dir, args.out_dir, opts, nj=args.nj, run_jobs=run_jobs)
    msg = f"decoded {len(res['hyps'])} utterances (RTF {res['rtf']:.4f}) into {out / 'hyp.txt'}"
    model, cfg, _, spk2id = load_trained(args.exp_dir, args.checkpoint)
    if model.aux_head is not None:
        ds = _build_dataset(cfg, args.data_dir, spk2id)
        if all(ds.spk_label[u] in spk2id for u in ds.utts):
            # classes only an untranscribed set had are masked (see Trainer.extra_classes)
            extra = untranscribed_classes(args.exp_dir, spk2id)
            if set(extra) & {spk2id[ds.spk_label[u]] for u in ds.utts}:
                extra = []  # the set has untranscribed speakers: score over every class
            acc, acc_all = speaker_accuracy(model, ds, args.batch_frames, exclude=extra)
            info = {"acc_spk": round(acc, 2), "num_utts": len(ds),
                    "chance": round(100.0 / (len(spk2id) - len(extra)), 2), "num_classes": len(spk2id) - len(extra)}
            if extra:
                info["acc_spk_all_classes"] = round(acc_all, 2)
                info["masked_untranscribed_classes"] = len(extra)
            atomic_write_text(out / "spk_acc.json", json.dumps(info) + "\n")
            msg += f"; speaker accuracy of the aux head {acc:.1f}%"
    print(msg)


if __name__ == "__main__":
    main()
