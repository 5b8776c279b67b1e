"""Stage 2: fbank features of a data dir into a dump dir (feats.scp + split/feats.<j>.ark,
utt2num_frames + the data dir's tables), and optionally global CMVN stats.

    python -m asr_gr.bin.compute_fbank --data-dir data/train --out-dir dump/fbank/train --nj 4 --cmvn
    python -m asr_gr.bin.compute_fbank ... --speed-perturb "0.9 1.0 1.1"   # ESPnet-style augmentation

``--nj N`` splits the data dir as ``utils/split_data.sh --per-utt DIR N`` does (into DIR/splitNutt/)
and runs N worker processes, one per part; a rerun after a kill redoes only the unfinished jobs.
``--cmd "utils/slurm.pl --mem 2G"`` (a cmd.sh variable) runs the N parts as jobs of that backend
instead (``--part J`` each, logs in OUT/log/fbank.J.log), then merges them; the first failing part
ends the run, naming its job id and log.
Audio at another sample rate than ``--sample-rate`` is an error unless ``--resample true``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.record import write_record
from asr_gr.data.kaldi_dir import validate_data_dir
from asr_gr.features.cmvn import write_global_cmvn
from asr_gr.features.fbank import FbankConfig, compute_fbank_dir, compute_fbank_part
from asr_gr.launch.jobs import run_parts_through, strip_option
from asr_gr.lock import dir_lock
from asr_gr.utils import ConfigError, atomic_path, setup_logging

COPIED = ("text", "utt2spk", "spk2utt", "spk2gender", "utt2spkid", "utt2dur")


def str2bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")


def parse_factors(text: str) -> list[float]:
    try:
        factors = [float(f) for f in text.split()]
    except ValueError:
        raise ConfigError(f"--speed-perturb: expected numbers like \"0.9 1.0 1.1\", got '{text}'") from None
    if not factors or any(not 0.5 <= f <= 2.0 for f in factors):
        raise ConfigError(f"--speed-perturb: factors must lie in [0.5, 2.0], got '{text}'")
    return factors


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="Kaldi data dir with wav.scp")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--num-mel-bins", type=int, default=80)
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--nj", type=int, default=1,
                    help="parallel worker processes (one thread each), one per utils/split_data.sh --per-utt part")
    ap.add_argument("--cmd", default=None,
                    help='job backend for the --nj parts, e.g. "utils/run.pl" or "utils/slurm.pl --config '
                         'conf/slurm.conf" (default: worker processes here)')
    ap.add_argument("--part", type=int, default=None,
                    help="only part J of --nj (what each backend job runs; the whole command prepares, "
                         "launches and merges)")
    ap.add_argument("--resample", type=str2bool, default=False,
                    help="true: resample audio at another rate to --sample-rate (default: it is an error)")
    ap.add_argument("--speed-perturb", default="",
                    help='speed factors, e.g. "0.9 1.0 1.1": extract from an augmented copy of the data '
                         "dir (OUT/data_sp) with utterances sp<f>-<utt> of speakers sp<f>-<spk>")
    ap.add_argument("--cmvn", action="store_true", help="also write global CMVN stats to OUT/cmvn.ark")
    ap.add_argument("--no-text", action="store_true", help="the set is untranscribed")
    args = ap.parse_args(argv)
    setup_logging()
    if args.nj < 1:
        raise ConfigError(f"--nj: must be >= 1, got {args.nj}")
    errors = validate_data_dir(args.data_dir, no_text=args.no_text)
    if errors:
        for e in errors:
            print(f"ERROR: {e}", file=sys.stderr)
        sys.exit(1)
    out = Path(args.out_dir)
    config = FbankConfig(num_mel_bins=args.num_mel_bins, sample_frequency=args.sample_rate)
    if args.part is not None:  # one job of a backend: the driver (which holds the dir's lock) made
        # data_sp, the split and the fingerprint, and merges the parts
        part_dir = out / "data_sp" if args.speed_perturb.strip() else Path(args.data_dir)
        n = compute_fbank_part(part_dir, out, config, nj=args.nj, part=args.part, resample=args.resample)
        print(f"wrote features of {n} utterances (part {args.part} of {args.nj}) to {out}/split")
        return
    raw = list(sys.argv[1:] if argv is None else argv)
    with dir_lock(out, "dump dir"):
        _extract(args, out, config, raw, argv)


def _extract(args, out, config, raw, argv):
    data_dir = Path(args.data_dir)
    if args.speed_perturb.strip():
        from asr_gr.features.perturb import speed_perturb_data_dir

        factors = parse_factors(args.speed_perturb)
        data_dir = speed_perturb_data_dir(data_dir, out / "data_sp", factors,
                                          sample_rate=args.sample_rate, resample=args.resample)
    run_jobs = None
    if args.cmd:
        def run_jobs(nj):
            run_parts_through(args.cmd, nj, out / "log" / "fbank.JOB.log", "asr_gr.bin.compute_fbank",
                              strip_option(raw, "--cmd"))
    n = compute_fbank_dir(data_dir, out, config, nj=args.nj, resample=args.resample, run_jobs=run_jobs)
    for name in COPIED:
        src = data_dir / name
        if src.exists():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(src, tmp)
    if args.cmvn:
        write_global_cmvn(out / "feats.scp", out / "cmvn.ark")
    write_record(out, "asr_gr.bin.compute_fbank", argv, args)
    print(f"wrote features of {n} utterances to {out}")


if __name__ == "__main__":
    main()
