"""Stage 6: speaker probing of a frozen model, layer by layer (0 = input features).

    python -m asr_gr.bin.probe --exp-dir exp/train_none --data-dir dump/fbank/dev --data-dir dump/fbank/test
    python -m asr_gr.bin.probe --overlay exp/train_none exp/train_mtl exp/train_adversarial --out exp/probe.png

Writes EXP/probe/probe.tsv (layer, dim, linear and MLP probe accuracy, chance) and probe.png. The
probe's data are utterances of speakers split into probe-train/probe-test utterances of the *same*
speakers (by default sets of speakers the model never saw, e.g. dev and test). --overlay draws the
curves of several exp dirs in one plot (the paper's figure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_gr.analysis.probe import ProbeRow, plot_probe_curves, probe
from asr_gr.bin.common import main_guard
from asr_gr.inference import load_trained
from asr_gr.lock import dir_lock
from asr_gr.utils import DataError, atomic_write_text, setup_logging

HEADER = "layer\tdim\tlinear_acc\tmlp_acc\tchance"


def read_tsv(path) -> list[ProbeRow]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != HEADER:
        raise DataError(path, 1, f"not a probe table (expected the header '{HEADER}')")
    rows = []
    for i, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        try:
            rows.append(ProbeRow(int(f[0]), int(f[1]), float(f[2]), float(f[3]), float(f[4])))
        except (ValueError, IndexError):
            raise DataError(path, i, f"bad row {line!r}") from None
    return rows


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-dir")
    ap.add_argument("--data-dir", action="append", default=[], help="dump dir(s) of the probe's utterances")
    ap.add_argument("--checkpoint", default="best.pt")
    ap.add_argument("--test-fraction", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=300, help="full-batch training epochs of each probe")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overlay", nargs="+", metavar="EXP", help="plot the probe.tsv of these exp dirs together")
    ap.add_argument("--out", help="PNG for --overlay")
    args = ap.parse_args(argv)
    setup_logging()
    if args.overlay:
        curves = {Path(e).name: read_tsv(Path(e) / "probe" / "probe.tsv") for e in args.overlay}
        out = args.out or str(Path(args.overlay[0]).parent / "probe_compare.png")
        plot_probe_curves(curves, out)
        print(f"wrote {out}")
        return
    if not args.exp_dir or not args.data_dir:
        ap.error("--exp-dir and at least one --data-dir are needed (or --overlay)")
    with dir_lock(Path(args.exp_dir) / "probe", "probe dir"):
        _probe(args)


def _probe(args):
    system = load_trained(args.exp_dir, args.checkpoint)
    model, cfg = system.model, system.config
    sets = [system.dataset(d, spk2id=None) for d in args.data_dir]
    rows = probe(model, sets, test_fraction=args.test_fraction, seed=args.seed, epochs=args.epochs)
    out = Path(args.exp_dir) / "probe"
    atomic_write_text(out / "probe.tsv", HEADER + "\n" + "".join(
        f"{r.layer}\t{r.dim}\t{r.linear_acc:.2f}\t{r.mlp_acc:.2f}\t{r.chance:.2f}\n" for r in rows))
    plot_probe_curves({Path(args.exp_dir).name: rows}, out / "probe.png",
                      title=f"Speaker probing: {Path(args.exp_dir).name} (aux={cfg.get('aux', 'none')})")
    print(f"{'layer':>5} {'dim':>5} {'linear %':>9} {'MLP %':>7} {'chance %':>9}")
    for r in rows:
        print(f"{r.layer:>5} {r.dim:>5} {r.linear_acc:>9.1f} {r.mlp_acc:>7.1f} {r.chance:>9.1f}")
    print(f"wrote {out / 'probe.tsv'} and {out / 'probe.png'}")


if __name__ == "__main__":
    main()
