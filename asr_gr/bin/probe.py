"""Stage 6: speaker probing of a frozen model, layer by layer (0 = input features).

    python -m asr_gr.bin.probe --exp-dir exp/train_none --data-dir dump/fbank/probe
    python -m asr_gr.bin.probe --compare exp/train_none exp/train_mtl exp/train_adversarial --set probe

Probing writes EXP/probe_<set>/ (set = the dump dir's name, or the names joined with '+' when several
--data-dir are pooled): probe.tsv (per layer: linear and MLP identification accuracy with 95 % CIs,
chance, verification EER with its 95 % CI; n/a where undefined), probe.png, per_utt.tsv (correctness of
every probe-test utterance per layer), trials.tsv (every trial's cosine score per layer) and probe.json
(the set, counts, and the choices made). The set's utterances are split per speaker into probe-train and
probe-test utterances of the same speakers.

--compare draws the systems' curves together (exp/probe_compare_<set>.png, the paper's figure) and
writes the paired differences of every system against the first (Δ accuracy, Δ EER per layer with
paired-bootstrap 95 % CIs on the same utterances and trials) to exp/probe_compare_<set>.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_gr.analysis.probe import (compare_probe_dirs, fmt, fmt_ci, plot_probe_curves, probe, read_tsv,
                                   write_probe_dir)
from asr_gr.bin.common import main_guard
from asr_gr.device import PRECISION_CHOICES
from asr_gr.inference import load_trained
from asr_gr.record import write_record
from asr_gr.tb import log_probe, probe_rows_from_tsv
from asr_gr.lock import dir_lock
from asr_gr.utils import DataError, atomic_write_text, setup_logging

__all__ = ["main", "read_tsv", "probe_dir_of", "compare_markdown"]


def probe_dir_of(exp_dir, set_name: str) -> Path:
    return Path(exp_dir) / f"probe_{set_name}"


def compare_markdown(exps: list, set_name: str, num_samples: int, seed: int) -> str:
    base = exps[0]
    lines = [f"# Speaker probing on `{set_name}`: systems against `{Path(base).name}`", "",
             f"Δ = B − A, absolute %; 95 % CI of a paired bootstrap ({num_samples} draws, seed {seed}): "
             "accuracy over the same probe-test utterances, EER over the speakers of the same trials. "
             "Higher accuracy or lower EER = more speaker information in the layer.", ""]
    for e in exps[1:]:
        rows = compare_probe_dirs(probe_dir_of(base, set_name), probe_dir_of(e, set_name), num_samples, seed)
        lines += [f"## `{Path(e).name}` − `{Path(base).name}`", "",
                  "| layer | Δ linear acc [95% CI] | Δ MLP acc [95% CI] | Δ EER [95% CI] |", "|---:|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.layer} | {fmt_ci(r.linear[0], r.linear[1], sign=True)} | "
                         f"{fmt_ci(r.mlp[0], r.mlp[1], sign=True)} | {fmt_ci(r.eer[0], r.eer[1], sign=True)} |")
        lines.append("")
    return "\n".join(lines)


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir")
    ap.add_argument("--data-dir", action="append", default=[],
                    help="dump dir of the probe set (repeat to pool several into one set)")
    ap.add_argument("--checkpoint", default="best.pt")
    ap.add_argument("--test-fraction", type=float, default=0.3,
                    help="share of each speaker's utterances in probe-test (at least 1, at most all but 1)")
    ap.add_argument("--epochs", type=int, default=300, help="full-batch training epochs of each probe")
    ap.add_argument("--num-nontarget", type=int, default=20000,
                    help="non-target verification trials sampled (all target trials are used)")
    ap.add_argument("--num-samples", type=int, default=1000, help="bootstrap draws of every interval")
    ap.add_argument("--seed", type=int, default=0, help="seeds the split, the trials and the bootstrap")
    ap.add_argument("--batch-frames", type=int, default=40000, help="padded frames per forward batch")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when the model's config has "
                    "ngpu > 0 and a GPU is visible, else cpu)")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISION_CHOICES),
                    help="autocast precision of the frozen model's forward pass (default fp32)")
    ap.add_argument("--compare", "--overlay", nargs="+", metavar="EXP", dest="compare",
                    help="plot these exp dirs' probes of --set together and compare each with the first, paired")
    ap.add_argument("--set", help="probe set name for --compare (the probe_<set> dirs)")
    ap.add_argument("--out", help="--compare: output PNG (default: <dir of the first EXP>/probe_compare_<set>.png);"
                    " the table goes beside it as .md")
    args = ap.parse_args(argv)
    setup_logging()
    if args.compare:
        if not args.set:
            ap.error("--compare needs --set NAME (the probe_<NAME> dirs to compare)")
        curves = {Path(e).name: read_tsv(probe_dir_of(e, args.set) / "probe.tsv") for e in args.compare}
        out = Path(args.out or Path(args.compare[0]).parent / f"probe_compare_{args.set}.png")
        plot_probe_curves(curves, out, title=f"Speaker probing per layer on '{args.set}'")
        write_record(out.parent, "asr_gr.bin.probe", argv, args)
        print(f"wrote {out}")
        if len(args.compare) > 1:
            md = compare_markdown(args.compare, args.set, args.num_samples, args.seed)
            atomic_write_text(out.with_suffix(".md"), md)
            print(md, end="")
            print(f"wrote {out.with_suffix('.md')}")
        return
    if not args.exp_dir or not args.data_dir:
        ap.error("--exp-dir and at least one --data-dir are needed (or --compare)")
    if not 0 < args.test_fraction < 1:
        ap.error(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.num_nontarget < 1 or args.num_samples < 1:
        ap.error("--num-nontarget and --num-samples must be positive")
    set_name = "+".join(Path(d).name for d in args.data_dir)
    with dir_lock(probe_dir_of(args.exp_dir, set_name), "probe dir"):
        _probe(args, set_name, argv)


def _probe(args, set_name: str, argv):
    system = load_trained(args.exp_dir, args.checkpoint, device=args.device)
    model, cfg = system.model, system.config
    for d in args.data_dir:
        if not (Path(d) / "feats.scp").exists():
            raise DataError(Path(d) / "feats.scp", None, "does not exist (is this a dump dir of stage 2?)")
    sets = [system.dataset(d, spk2id=None) for d in args.data_dir]
    res = probe(model, sets, test_fraction=args.test_fraction, seed=args.seed, epochs=args.epochs,
                num_nontarget=args.num_nontarget, num_samples=args.num_samples, set_name=set_name,
                batch_frames=args.batch_frames, precision=args.precision)
    out = probe_dir_of(args.exp_dir, res.set_name)
    write_probe_dir(out, res)
    log_probe(args.exp_dir, res.set_name, probe_rows_from_tsv(out / "probe.tsv"))  # tensorboard/probe_<set>
    write_record(out, "asr_gr.bin.probe", argv, args)
    plot_probe_curves({Path(args.exp_dir).name: res.rows}, out / "probe.png",
                      title=f"Speaker probing of {Path(args.exp_dir).name} (aux={cfg.get('aux', 'none')}) "
                            f"on '{res.set_name}'")
    m = res.meta
    print(f"probe set '{res.set_name}': {m['speakers']} speakers, {m['probe_train_utts']} probe-train / "
          f"{m['probe_test_utts']} probe-test utterances, {m['target_trials']} target + "
          f"{m['nontarget_trials']} non-target trials; chance accuracy {fmt(m['chance_acc'], '.1f')} %, "
          "chance EER 50 %")
    print(f"{'layer':>5} {'dim':>5}  {'linear acc % [95% CI]':<22} {'MLP acc % [95% CI]':<22} EER % [95% CI]")
    for r in res.rows:
        print(f"{r.layer:>5} {r.dim:>5}  {fmt_ci(r.linear_acc, r.linear_ci):<22} {fmt_ci(r.mlp_acc, r.mlp_ci):<22} "
              f"{fmt_ci(r.eer, r.eer_ci)}")
    print(f"wrote {out}/probe.tsv, probe.png, per_utt.tsv, trials.tsv, probe.json")


if __name__ == "__main__":
    main()
