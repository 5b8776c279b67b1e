"""Stage 6: speaker probing of a frozen model, layer by layer (0 = input features).

    python -m asr_gr.bin.probe --exp-dir exp/train_none --data-dir dump/fbank/probe
    python -m asr_gr.bin.probe --compare exp/train_none exp/train_mtl exp/train_adversarial --set probe
    python -m asr_gr.bin.probe --pretrained wav2vec2 --pretrained-ckpt wav2vec2_base.pth \
        --pretrained-config WAV2VEC2_BASE --exp-dir exp/wav2vec2_base --data-dir data/probe
    python -m asr_gr.bin.probe --power exp/train_none/probe_probe [exp/train_mtl/probe_probe]

Probing writes EXP/probe_<set>/ (set = the dump dir's name, or the names joined with '+' when several
--data-dir are pooled): probe.tsv (per layer: linear and MLP identification accuracy with 95 % CIs,
chance, verification EER with its 95 % CI; n/a where undefined; then each probe's saturation verdict
over all layers), probe.png, per_utt.tsv (correctness of every probe-test utterance per layer),
trials.tsv (every trial's cosine score per layer) and probe.json (the set, counts, and the choices made).
The set's utterances are split per speaker into probe-train and probe-test utterances of the same
speakers. A probe saturated on every layer (every 95 % CI reaching perfect: 'ceiling'; none clear of
chance: 'chance') is flagged in every output: it cannot rank layers or systems on that set.

--pretrained wav2vec2|hubert|wavlm probes a torchaudio encoder of that family from a local checkpoint
file (--pretrained-ckpt: a state_dict, e.g. a torchaudio.pipelines bundle's weight file; nothing is
downloaded) whose architecture --pretrained-config names (a bundle's name such as WAV2VEC2_BASE or
WAVLM_BASE_PLUS, a torchaudio.models factory such as hubert_large, or a JSON/YAML file of
wav2vec2_model / wavlm_model arguments; default the family's base; see asr_gr/analysis/pretrained.py),
on the waveforms of Kaldi data dirs (wav.scp, with segments; resampled to the model's rate): layer 0 =
its CNN output, 1..L = its transformer layers; the same tables, so --compare pairs it with our systems
probed on the same set (the split and trials depend on the set and the seed only).

--compare draws the systems' curves together (exp/probe_compare_<set>.png, the paper's figure) and
writes the paired differences of every system against the first (Δ accuracy, Δ EER per layer with
paired-bootstrap 95 % CIs on the same utterances and trials) to exp/probe_compare_<set>.md.

--power DIR [DIR2] measures how the 95 % speaker-bootstrap interval of the EER of probe dir DIR (or of
the paired Δ EER DIR2 − DIR) narrows with the number of speakers (random subsets of the set's speakers,
then c/sqrt(n) beyond), and how many speakers a Δ EER of --deltas points needs: DIR/power/ (or
DIR2/power_vs_<exp of DIR>/) power.md, power.tsv, power_needed.tsv, power.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_gr.analysis.probe import (NA, SAT_KINDS, SATURATION_NOTE, compare_probe_dirs, eer_power, fmt, fmt_ci,
                                   plot_probe_curves, power_tables, probe, probe_layers, read_tsv, saturation,
                                   saturation_short, saturation_warnings, write_probe_dir)
from asr_gr.bin.common import main_guard
from asr_gr.device import PRECISION_CHOICES
from asr_gr.record import write_record
from asr_gr.tb import log_probe, probe_rows_from_tsv
from asr_gr.lock import dir_lock
from asr_gr.utils import DataError, atomic_write_text, setup_logging

__all__ = ["main", "read_tsv", "probe_dir_of", "compare_markdown"]


def probe_dir_of(exp_dir, set_name: str) -> Path:
    return Path(exp_dir) / f"probe_{set_name}"


SAT_LABEL = {"linear": "linear acc", "mlp": "MLP acc", "eer": "EER"}


def compare_markdown(exps: list, set_name: str, num_samples: int, seed: int) -> str:
    base = exps[0]
    sat = {e: saturation(read_tsv(probe_dir_of(e, set_name) / "probe.tsv")) for e in exps}
    lines = [f"# Speaker probing on `{set_name}`: systems against `{Path(base).name}`", "",
             f"Δ = B − A, absolute %; 95 % CI of a paired bootstrap ({num_samples} draws, seed {seed}): "
             "accuracy over the same probe-test utterances, EER over the speakers of the same trials. "
             "Higher accuracy or lower EER = more speaker information in the layer.", ""]
    flagged = [f"`{Path(e).name}`: {saturation_short(sat[e])}" for e in exps if saturation_short(sat[e])]
    if flagged:
        lines += [f"‡ {SATURATION_NOTE}: " + "; ".join(flagged) + ". Their columns are marked ‡ below.", ""]
    for e in exps[1:]:
        rows = compare_probe_dirs(probe_dir_of(base, set_name), probe_dir_of(e, set_name), num_samples, seed)
        mark = {k: " ‡" if any(sat[x][k] not in ("ok", NA) for x in (base, e)) else "" for k in SAT_KINDS}
        lines += [f"## `{Path(e).name}` − `{Path(base).name}`", "",
                  f"| layer | Δ linear acc [95% CI]{mark['linear']} | Δ MLP acc [95% CI]{mark['mlp']} | "
                  f"Δ EER [95% CI]{mark['eer']} |", "|---:|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.layer} | {fmt_ci(r.linear[0], r.linear[1], sign=True)} | "
                         f"{fmt_ci(r.mlp[0], r.mlp[1], sign=True)} | {fmt_ci(r.eer[0], r.eer[1], sign=True)} |")
        notes = [f"{SAT_LABEL[k]} of " + " and ".join(f"`{Path(x).name}` {sat[x][k]}" for x in (base, e)
                                                      if sat[x][k] not in ("ok", NA))
                 for k in SAT_KINDS if mark[k]]
        if notes:
            lines += ["", "‡ saturated on every layer: " + "; ".join(notes) + "."]
        lines.append("")
    return "\n".join(lines)


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir", help="the system's exp dir (with --pretrained: the dir its probe_<set> goes to)")
    ap.add_argument("--data-dir", action="append", default=[],
                    help="dump dir of the probe set (with --pretrained: its Kaldi data dir with wav.scp); "
                    "repeat to pool several into one set")
    ap.add_argument("--checkpoint", default="best.pt")
    ap.add_argument("--pretrained", choices=["wav2vec2", "hubert", "wavlm"],
                    help="probe a pretrained torchaudio encoder of this family (--pretrained-ckpt) instead of an "
                    "exp dir's model")
    ap.add_argument("--pretrained-ckpt", metavar="FILE",
                    help="--pretrained: its local checkpoint (a state_dict, or a dict with 'state_dict' and "
                    "optionally 'config')")
    ap.add_argument("--pretrained-config", metavar="NAME_OR_FILE",
                    help="--pretrained: its architecture: a torchaudio.pipelines bundle's name (WAV2VEC2_BASE, "
                    "HUBERT_LARGE, WAVLM_BASE_PLUS, ...), a torchaudio.models factory (wav2vec2_large_lv60k, ...) "
                    "or a JSON/YAML file of torchaudio.models.wav2vec2_model / wavlm_model arguments (plus "
                    "normalize_waveform, sample_rate). Default: the checkpoint's 'config', else the family's "
                    "base (wav2vec2_base, hubert_base, wavlm_base)")
    ap.add_argument("--test-fraction", type=float, default=0.3,
                    help="share of each speaker's utterances in probe-test (at least 1, at most all but 1)")
    ap.add_argument("--epochs", type=int, default=300, help="full-batch training epochs of each probe")
    ap.add_argument("--num-nontarget", type=int, default=20000,
                    help="non-target verification trials sampled (all target trials are used)")
    ap.add_argument("--num-samples", type=int, default=1000, help="bootstrap draws of every interval")
    ap.add_argument("--seed", type=int, default=0, help="seeds the split, the trials and the bootstrap")
    ap.add_argument("--batch-frames", type=int, default=40000, help="padded frames per forward batch")
    ap.add_argument("--num-threads", type=int, default=0,
                    help="CPU threads of torch (0: torch's default); with many small forward passes on a "
                    "shared machine, 1 is often fastest")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when the model's config has "
                    "ngpu > 0 and a GPU is visible, else cpu; --pretrained: cuda when a GPU is visible)")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISION_CHOICES),
                    help="autocast precision of the frozen model's forward pass (default fp32)")
    ap.add_argument("--compare", "--overlay", nargs="+", metavar="EXP", dest="compare",
                    help="plot these exp dirs' probes of --set together and compare each with the first, paired")
    ap.add_argument("--set", help="probe set name for --compare (the probe_<set> dirs)")
    ap.add_argument("--out", help="--compare: output PNG (default: <dir of the first EXP>/probe_compare_<set>.png);"
                    " the table goes beside it as .md. --power: the output dir (default: DIR/power, or "
                    "DIR2/power_vs_<exp of DIR>)")
    ap.add_argument("--power", nargs="+", metavar="PROBE_DIR",
                    help="EER interval half-width against the number of speakers, of one probe dir's EER or "
                    "of the paired Δ EER of two (the second minus the first)")
    ap.add_argument("--power-sizes", type=int, nargs="+", metavar="N",
                    help="--power: speaker counts measured (default 5, 10, 20, 40, ... and all)")
    ap.add_argument("--power-subsets", type=int, default=20, help="--power: random speaker subsets per count")
    ap.add_argument("--deltas", type=float, nargs="+", default=[1.0, 2.0, 5.0],
                    help="--power: EER differences (points) to give the speakers needed for")
    args = ap.parse_args(argv)
    setup_logging()
    if args.num_threads < 0:
        ap.error("--num-threads must be >= 0")
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    if args.num_nontarget < 1 or args.num_samples < 1:
        ap.error("--num-nontarget and --num-samples must be positive")
    if args.power:
        if len(args.power) > 2:
            ap.error("--power takes one probe dir (its EER) or two (the paired Δ EER of the second minus the first)")
        if args.power_subsets < 2:
            ap.error("--power-subsets must be at least 2")
        return _power(args, argv)
    if args.compare:
        if not args.set:
            ap.error("--compare needs --set NAME (the probe_<NAME> dirs to compare)")
        curves = {Path(e).name: read_tsv(probe_dir_of(e, args.set) / "probe.tsv") for e in args.compare}
        out = Path(args.out or Path(args.compare[0]).parent / f"probe_compare_{args.set}.png")
        plot_probe_curves(curves, out, title=f"Speaker probing per layer on '{args.set}'")
        write_record(out.parent, "asr_gr.bin.probe", argv, args)
        print(f"wrote {out}")
        for name, rows in curves.items():
            for w in saturation_warnings(saturation(rows)):
                print(f"WARNING: {name}: {w}")
        if len(args.compare) > 1:
            md = compare_markdown(args.compare, args.set, args.num_samples, args.seed)
            atomic_write_text(out.with_suffix(".md"), md)
            print(md, end="")
            print(f"wrote {out.with_suffix('.md')}")
        return
    if not args.exp_dir or not args.data_dir:
        ap.error("--exp-dir and at least one --data-dir are needed (or --compare, or --power)")
    if args.pretrained and not args.pretrained_ckpt:
        ap.error("--pretrained needs --pretrained-ckpt FILE (a local checkpoint: nothing is downloaded)")
    if (args.pretrained_ckpt or args.pretrained_config) and not args.pretrained:
        ap.error("--pretrained-ckpt and --pretrained-config go with --pretrained wav2vec2|hubert|wavlm")
    if not 0 < args.test_fraction < 1:
        ap.error(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    set_name = "+".join(Path(d).name for d in args.data_dir)
    with dir_lock(probe_dir_of(args.exp_dir, set_name), "probe dir"):
        if args.pretrained:
            _probe_pretrained(args, set_name, argv)
        else:
            _probe(args, set_name, argv)


def _probe(args, set_name: str, argv):
    from asr_gr.inference import load_trained

    system = load_trained(args.exp_dir, args.checkpoint, device=args.device)
    model, cfg = system.model, system.config
    for d in args.data_dir:
        if not (Path(d) / "feats.scp").exists():
            raise DataError(Path(d) / "feats.scp", None, "does not exist (is this a dump dir of stage 2?)")
    sets = [system.dataset(d, spk2id=None) for d in args.data_dir]
    res = probe(model, sets, test_fraction=args.test_fraction, seed=args.seed, epochs=args.epochs,
                num_nontarget=args.num_nontarget, num_samples=args.num_samples, set_name=set_name,
                batch_frames=args.batch_frames, precision=args.precision)
    _report(args, res, argv, f"{Path(args.exp_dir).name} (aux={cfg.get('aux', 'none')})")


def _probe_pretrained(args, set_name: str, argv):
    from asr_gr.analysis.pretrained import check_wave_dirs, load_pretrained, pooled_waveform_layers
    from asr_gr.analysis.probe import check_speakers
    from asr_gr.data.kaldi_dir import speaker_labels
    from asr_gr.device import pick_device

    spk_of = {u: s for d in args.data_dir for u, s in speaker_labels(d).items()}
    where = Path(args.data_dir[0]) / "utt2spk"
    check_speakers(set_name, spk_of, where)  # before loading and running the model
    check_wave_dirs(args.data_dir)
    device = pick_device(args.device, ngpu=1)  # None: cuda where a GPU is visible
    enc = load_pretrained(args.pretrained, args.pretrained_ckpt, args.pretrained_config, device)
    utts, layers, spk_of = pooled_waveform_layers(enc, args.data_dir, args.precision)
    res = probe_layers(set_name, utts, layers, spk_of, where, test_fraction=args.test_fraction, seed=args.seed,
                       epochs=args.epochs, num_nontarget=args.num_nontarget, num_samples=args.num_samples,
                       meta={"data_dirs": [str(d) for d in args.data_dir], "model": enc.describe()})
    _report(args, res, argv, f"{args.pretrained} {enc.arch.name} ({Path(args.pretrained_ckpt).name}; "
                             "layer 0 = CNN output)")


def _report(args, res, argv, what: str):
    """probe_<set>/ files, the tensorboard run, the record, the plot and the printed table."""
    out = probe_dir_of(args.exp_dir, res.set_name)
    write_probe_dir(out, res)
    rows = [{k: v for k, v in r.items() if not k.endswith("_sat")} for r in probe_rows_from_tsv(out / "probe.tsv")]
    log_probe(args.exp_dir, res.set_name, rows)  # tensorboard/probe_<set>: the numbers, not the verdicts
    write_record(out, "asr_gr.bin.probe", argv, args)
    plot_probe_curves({Path(args.exp_dir).name: res.rows}, out / "probe.png",
                      title=f"Speaker probing of {what} on '{res.set_name}'")
    m = res.meta
    print(f"probe set '{res.set_name}': {m['speakers']} speakers, {m['probe_train_utts']} probe-train / "
          f"{m['probe_test_utts']} probe-test utterances, {m['target_trials']} target + "
          f"{m['nontarget_trials']} non-target trials; chance accuracy {fmt(m['chance_acc'], '.1f')} %, "
          "chance EER 50 %")
    print(f"{'layer':>5} {'dim':>5}  {'linear acc % [95% CI]':<22} {'MLP acc % [95% CI]':<22} EER % [95% CI]")
    for r in res.rows:
        print(f"{r.layer:>5} {r.dim:>5}  {fmt_ci(r.linear_acc, r.linear_ci):<22} {fmt_ci(r.mlp_acc, r.mlp_ci):<22} "
              f"{fmt_ci(r.eer, r.eer_ci)}")
    for w in saturation_warnings(m["saturation"]):
        print(f"WARNING: {w}")
    print(f"wrote {out}/probe.tsv, probe.png, per_utt.tsv, trials.tsv, probe.json")


def _power(args, argv):
    dirs = [Path(d) for d in args.power]
    for d in dirs:
        if not (d / "trials.tsv").exists():
            raise DataError(d / "trials.tsv", None, "does not exist (is this a probe_<set> dir of asr_gr.bin.probe?)")
    res = eer_power(dirs[0], dirs[1] if len(dirs) > 1 else None, sizes=args.power_sizes,
                    subsets=args.power_subsets, num_samples=args.num_samples, seed=args.seed)
    md, tsv, needed = power_tables(res, args.deltas)
    out = Path(args.out) if args.out else (dirs[0] / "power" if len(dirs) == 1 else
                                           dirs[1] / f"power_vs_{dirs[0].resolve().parent.name}")
    atomic_write_text(out / "power.md", md)
    atomic_write_text(out / "power.tsv", tsv)
    atomic_write_text(out / "power_needed.tsv", needed)
    atomic_write_text(out / "power.json", json.dumps({**res.meta, "set_speakers": res.set_speakers,
                                                      "sizes": res.sizes, "fit_sizes": res.fit_sizes},
                                                     indent=1) + "\n")
    write_record(out, "asr_gr.bin.probe", argv, args)
    print(md, end="")
    print(f"wrote {out}/power.md, power.tsv, power_needed.tsv, power.json")


if __name__ == "__main__":
    main()
