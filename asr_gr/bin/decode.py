"""Stage 4: CTC decoding of dump dirs with a trained model: greedy, or a beam search with a word LM.

    python -m asr_gr.bin.decode --exp-dir exp/train_none --data-dir dump/fbank/test \\
        --out-dir exp/train_none/decode_test_beam20_lm1_ws0 [--checkpoint best.pt] [--beam-size 20 \\
        --lm data/lm/lm.arpa --lexicon data/lm/lexicon.txt --lm-weight 1 --word-score 0] \\
        [--decoder auto|flashlight|prefix] [--nj 2] [--dump-layers utts.txt] \\
        [--device cuda] [--precision bf16]

Several sets and setups in one process (what stage 4 runs, one call per system): every ``--task DATA
OUT`` is decoded with the search options given (beam, LM, ...), every ``--greedy-task DATA OUT``
greedily; the model is loaded once, each data dir's encoder forward pass runs once and every setup of
that data dir is searched from its log-probabilities (and the speaker head's accuracy read off the same
pass). ``--data-dir``/``--out-dir`` are one ``--task``.

    python -m asr_gr.bin.decode --exp-dir exp/train_none --nj 2 --beam-size 20 --lm ... \\
        --task dump/fbank/test exp/train_none/decode_test_beam20_lm1_ws0 \\
        --greedy-task dump/fbank/test exp/train_none/decode_test_greedy

Decoders: greedy (--beam-size 1, no LM); ``flashlight`` (default with --lm/--lexicon): torchaudio's
lexicon-constrained ctc_decoder, the ARPA loaded by KenLM, hypotheses made of lexicon words (default
lexicon: the LM's vocabulary spelled in the model's tokens); ``prefix``: the own lexicon-free CTC
prefix beam search, with the ARPA read into Python (small LMs; the test reference). The score of a
hypothesis is acoustic log-probability + lm-weight x natural-log LM probability + word-score per word,
in both.

Writes OUT/hyp.txt (Kaldi text format), OUT/rtf.txt (real-time factor) and OUT/decode_setup.json (the
decoder and its options); with --dump-layers the
encoder's per-layer outputs (layer 0 = input features) of the listed utterances as
OUT/layers/layer<k>.ark/.scp; when the model has a speaker head and every speaker of the set was seen
in training, also OUT/spk_acc.json (accuracy of the head; for a semi-supervised system over the
training speakers' classes, those only the untranscribed set had masked, with the unmasked figure
beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

import torch

from asr_gr.bin.common import main_guard
from asr_gr.decode.runner import DecodeOptions, DecodeTask, decode_tasks, decode_tasks_part
from asr_gr.device import PRECISION_CHOICES, autocast, explain_oom
from asr_gr.inference import load_trained
from asr_gr.launch.jobs import run_parts_through, strip_option
from asr_gr.lock import dir_lock
from asr_gr.record import write_record
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
    ap.add_argument("--data-dir", default=None, help="dump dir with feats.scp (with --out-dir: one --task)")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--task", nargs=2, action="append", default=[], metavar=("DATA_DIR", "OUT_DIR"),
                    help="decode DATA_DIR into OUT_DIR with the search options given (repeatable)")
    ap.add_argument("--greedy-task", nargs=2, action="append", default=[], metavar=("DATA_DIR", "OUT_DIR"),
                    help="decode DATA_DIR into OUT_DIR greedily, from the same forward pass (repeatable)")
    ap.add_argument("--checkpoint", default="best.pt", help="file in the exp dir: best.pt, epochN.pt, ...")
    ap.add_argument("--batch-frames", type=int, default=40000)
    ap.add_argument("--num-threads", type=int, default=0)
    ap.add_argument("--beam-size", type=int, default=1, help="1 without LM: greedy; else the beam width")
    ap.add_argument("--lm", default=None, help="word n-gram LM (ARPA, .arpa.gz, or KenLM binary for flashlight)")
    ap.add_argument("--lexicon", default=None,
                    help="flashlight: 'WORD tok1 tok2 ...' lines (default: the LM's words spelled in tokens)")
    ap.add_argument("--decoder", default="auto", choices=["auto", "flashlight", "prefix"],
                    help="auto: flashlight with --lm/--lexicon, else prefix (beam) or greedy")
    ap.add_argument("--lm-weight", type=float, default=0.5, help="weight of the natural-log LM probability")
    ap.add_argument("--word-score", "--word-bonus", dest="word_score", type=float, default=0.0,
                    help="added per hypothesised word (--word-bonus: the old name)")
    ap.add_argument("--nj", type=int, default=1,
                    help="parallel worker processes, one per utils/split_data.sh --per-utt part")
    ap.add_argument("--cmd", default=None,
                    help='job backend for the --nj parts, e.g. "utils/run.pl" or "utils/slurm.pl --config '
                         'conf/slurm.conf" (default: worker processes here); logs in OUT/log/decode.J.log')
    ap.add_argument("--part", type=int, default=None,
                    help="only part J of --nj, into OUT/split<nj>/hyp.J.txt (what each backend job runs)")
    ap.add_argument("--dump-layers", default=None, metavar="UTT_LIST_FILE",
                    help="also write every encoder layer's output of these utterances to OUT/layers/")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when the model's config has "
                    "ngpu > 0 and a GPU is visible, else cpu)")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISION_CHOICES),
                    help="autocast precision of the forward pass (default fp32; see README for bf16)")
    args = ap.parse_args(argv)
    setup_logging()
    if args.beam_size < 1 or args.nj < 1:
        raise DataError("command line", None, "--beam-size and --nj must be >= 1")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    opts = DecodeOptions(checkpoint=args.checkpoint, beam_size=args.beam_size, lm=args.lm, lexicon=args.lexicon,
                         decoder=args.decoder, lm_weight=args.lm_weight, word_score=args.word_score,
                         batch_frames=args.batch_frames,
                         num_threads=args.num_threads, device=args.device, precision=args.precision,
                         dump_utts=_read_utt_list(args.dump_layers) if args.dump_layers else [])
    if (args.data_dir is None) != (args.out_dir is None):
        raise DataError("command line", None, "--data-dir and --out-dir go together (or use --task DATA OUT)")
    greedy = dataclasses.replace(opts, beam_size=1, lm=None, lexicon=None, decoder="auto",
                                 lm_weight=DecodeOptions.lm_weight, word_score=DecodeOptions.word_score)
    tasks = ([DecodeTask(args.data_dir, args.out_dir, opts)] if args.data_dir else []) \
        + [DecodeTask(d, o, opts) for d, o in args.task] + [DecodeTask(d, o, greedy) for d, o in args.greedy_task]
    if not tasks:
        raise DataError("command line", None, "nothing to decode: give --data-dir/--out-dir, --task or --greedy-task")
    if args.part is not None:  # one job of a backend; the driver holds the decode dirs' locks and merges
        n = decode_tasks_part(args.exp_dir, tasks, args.nj, args.part)
        print(f"decoded {sum(n)} utterances in {len(tasks)} decode(s) (part {args.part} of {args.nj})")
        return
    run_jobs = None
    if args.cmd:
        raw = list(sys.argv[1:] if argv is None else argv)
        log_dir = Path(args.out_dir) if len(tasks) == 1 else Path(args.exp_dir)

        def run_jobs(nj):
            run_parts_through(args.cmd, nj, log_dir / "log" / "decode.JOB.log", "asr_gr.bin.decode",
                              strip_option(strip_option(raw, "--cmd"), "--nj") + ["--nj", str(nj)])
    with contextlib.ExitStack() as stack:
        for out in sorted({str(Path(t.out_dir)) for t in tasks}):
            stack.enter_context(dir_lock(out, "decode dir"))
        _decode(args, tasks, argv, run_jobs)


def _decode(args, tasks, argv, run_jobs=None):
    system = load_trained(args.exp_dir, args.checkpoint, device=args.device)
    results = decode_tasks(args.exp_dir, tasks, nj=args.nj, system=system, run_jobs=run_jobs, speaker=True)
    device = next(system.model.parameters()).device
    reports: dict[str, dict | None] = {}
    for t, res in zip(tasks, results):
        out = Path(t.out_dir)
        msg = f"decoded {len(res['hyps'])} utterances (RTF {res['rtf']:.4f}) into {out / 'hyp.txt'}"
        d = str(t.data_dir)
        if d not in reports:
            if res["spk_logits"] is not None:  # read off the decoding's forward pass
                reports[d] = system.speaker_report(system.dataset(d), args.batch_frames, logits=res["spk_logits"])
            else:
                with explain_oom(args.batch_frames, "--batch-frames", device, suggest="--batch-frames {}"), \
                        autocast(device, args.precision):
                    reports[d] = system.speaker_report(system.dataset(d), args.batch_frames)
        info = reports[d]
        if info is not None:
            atomic_write_text(out / "spk_acc.json", json.dumps(info) + "\n")
            msg += f"; speaker accuracy of the aux head {info['acc_spk']:.1f}%"
        write_record(out, "asr_gr.bin.decode", argv, args, config=dataclasses.asdict(t.opts))
        print(msg)


if __name__ == "__main__":
    main()
