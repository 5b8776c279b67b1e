"""Collect every system under an exp root into RESULTS.md (and print the table).

    python -m asr_gr.bin.results --exp-root exp --test-set test --heldout-set train_heldout \
        --setups "greedy beam20_lm1_ws0"

Per system (exp dir with config.yaml): aux head, WER and CER on the test set for every decoding setup
(exp/<sys>/decode_<set>_<setup>, side by side: e.g. greedy and with the word LM), with two setups the
WER difference (second - first) and its 95% paired-bootstrap interval, speaker accuracy of the aux head
on the held-out utterances of training speakers, and training time. Below that summary, ESPnet-style
tables per decoded set and setup (every exp/*/decode_*/score/result.json): Snt, Wrd, and Corr Sub Del
Ins Err S.Err in %, for WER and CER.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr_gr.bin.common import main_guard
from asr_gr.config import load_yaml
from asr_gr.models.speaker import encoder_grad_scale
from asr_gr.score.significance import load_system, wer_interval
from asr_gr.score.wer import check_comparable
from asr_gr.record import write_record
from asr_gr.utils import DataError, atomic_write_text


def _json(path: Path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(path, None, f"not JSON ({str(e).splitlines()[0]}); rerun the stage that wrote it") from None


def decode_dir(exp, data_set: str, setup: str | None) -> Path:
    """exp/decode_<set>_<setup> (exp/decode_<set> without a setup: dirs of before setups were named)."""
    return Path(exp) / (f"decode_{data_set}_{setup}" if setup else f"decode_{data_set}")


def measured_mean_lambda(*exps) -> float | None:
    """The lambda applied at every training step of the runs ``exps`` (exp dirs), averaged over all
    their steps: each epoch's ``train_lambda`` of metrics.jsonl (the mean of its steps' ``lambda``
    stats) weighted by the epoch's number of steps. None if no run logged a finite one. Used for the
    adaptive schedule, whose lambda is measured, not computed. (Under DDP: rank 0's lambda.)"""
    import math

    from asr_gr.train.curves import read_metrics

    total, steps = 0.0, 0
    for exp in exps:
        if not (Path(exp) / "metrics.jsonl").exists():
            continue
        prev = 0
        for r in read_metrics(Path(exp) / "metrics.jsonl"):  # one row per epoch, the last one logged
            n, prev = r["step"] - prev, r["step"]
            lam = r.get("train_lambda")
            if n > 0 and isinstance(lam, (int, float)) and not isinstance(lam, bool) and math.isfinite(lam):
                total, steps = total + lam * n, steps + n
    return total / steps if steps else None


def heldout_acc(exp: Path, heldout_set: str, setups: list):
    """spk_acc.json of the held-out set: it does not depend on the decoding setup; the first found."""
    for d in [decode_dir(exp, heldout_set, s) for s in setups] + sorted(exp.glob(f"decode_{heldout_set}_*")):
        acc = _json(d / "spk_acc.json")
        if acc:
            return acc
    return None


def collect(exp_root, test_set: str, heldout_set: str | None, setups=(None,)) -> list[dict]:
    from asr_gr.score.significance import paired_bootstrap

    setups = list(setups) or [None]
    rows, compared = [], {s: {} for s in setups}
    for exp in sorted(p.parent for p in Path(exp_root).glob("*/config.yaml")):
        cfg = load_yaml(exp / "config.yaml")
        score_dirs = {s: decode_dir(exp, test_set, s) / "score" for s in setups}
        res = {s: _json(d / "result.json") for s, d in score_dirs.items()}
        first = next((r for r in res.values() if r), None)
        if first is None:
            continue
        for s, r in res.items():
            if r:
                compared[s][exp.name] = (score_dirs[s] / "result.json", r)
        acc = heldout_acc(exp, heldout_set, setups) if heldout_set else None
        train = _json(exp / "train_summary.json") or {}
        aux_conf = cfg.get("aux_conf") or {}
        scored = {s: load_system(d, f"{exp.name}/{s}") for s, d in score_dirs.items()
                  if (d / "per_utt.json").exists()}
        delta = None
        if len(setups) == 2 and len(scored) == 2:
            delta = paired_bootstrap(scored[setups[0]], scored[setups[1]])
        rows.append({
            "system": exp.name, "aux": cfg.get("aux", "none"),
            "spk_layer": aux_conf.get("spk_layer", "") if cfg.get("aux") != "none" else "",
            "enc_grad": encoder_grad_scale(cfg.get("aux", "none"), aux_conf, measured_mean_lambda(exp)),
            "wer": {s: r["wer"] if r else None for s, r in res.items()},
            "wer_ci": {s: wer_interval(scored[s]) if s in scored else None for s in setups},
            "cer": {s: r["cer"] if r else None for s, r in res.items()},
            "delta": delta, "snt": first["num_utts"], "spk": first["num_spk"],
            "acc_spk": acc["acc_spk"] if acc else None, "chance": acc["chance"] if acc else None,
            "epochs": train.get("epochs"), "train_seconds": train.get("train_seconds"),
        })
    for s, scored in compared.items():
        check_comparable(scored, f"the RESULTS table of '{test_set}'" + (f" ({s})" if s else ""))
    return rows


def markdown(rows: list[dict], test_set: str, heldout_set: str | None, setups=(None,)) -> str:
    setups = list(setups) or [None]
    named = [s for s in setups if s]
    intro = (f"Test set `{test_set}` (speakers unseen in training)"
             + (f", decoded with {', '.join(f'`{s}`' for s in named)} (exp/<system>/decode_{test_set}_<setup>)"
                if named else "")
             + f". Speaker accuracy: the aux head on `{heldout_set}` (held-out utterances of training speakers; "
               "chance in brackets). WER's 95 % interval: bootstrap over test utterances (1000 draws). enc. "
               "grad: the effective scale of the speaker loss's gradient reaching the encoder, averaged over "
               "training (+w for mtl, -w·mean(λ) for adversarial; the adaptive schedule's λ as logged at "
               "every step).")
    two = len(setups) == 2
    if two:
        intro += (f" Δ WER: `{setups[1]}` minus `{setups[0]}`, with its 95 % interval (paired bootstrap over "
                  "utterances, 1000 draws).")
    wer_cols = "".join(f" WER % {s} [95% CI] |" if s else " WER % [95% CI] |" for s in setups)
    cer_cols = "".join(f" CER % {s} |" if s else " CER % |" for s in setups)
    head = (f"| system | aux | spk_layer | enc. grad | #Snt | #Spk |{wer_cols}{' Δ WER [95% CI] |' if two else ''}"
            f"{cer_cols} spk acc % | epochs | train time |")
    align = "|---|---|---|---:|---:|---:|" + "---|" * len(setups) + ("---|" if two else "") \
        + "---:|" * len(setups) + "---:|---:|---:|"
    lines = ["# RESULTS", "", intro, "", head, align]

    def wer_cell(r, s):
        if r["wer"][s] is None:
            return " - |"
        ci = r["wer_ci"][s]
        return f" {r['wer'][s]:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "") + " |"

    for r in rows:
        acc = f"{r['acc_spk']:.1f} ({r['chance']:.1f})" if r["acc_spk"] is not None else "-"
        secs = r["train_seconds"]
        t = f"{secs / 60:.1f} min" if secs is not None else "-"
        grad = f"{r['enc_grad']:+.2f}" if r.get("enc_grad") is not None else "-"
        d = r["delta"]
        dcell = f" {d.delta:+.2f} [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}] |" if d is not None else " - |"
        lines.append(f"| {r['system']} | {r['aux']} | {r['spk_layer']} | {grad} | {r['snt']} | {r['spk']} |"
                     + "".join(wer_cell(r, s) for s in setups) + (dcell if two else "")
                     + "".join(f" {r['cer'][s]:.2f} |" if r["cer"][s] is not None else " - |" for s in setups)
                     + f" {acc} | {r['epochs'] or '-'} | {t} |")
    return "\n".join(lines) + "\n"


def dataset_tables(exp_root) -> str:
    """ESPnet-style per-set tables: one per decoded set, a row per system, WER and CER counts (%)."""
    sets: dict[str, list] = {}
    for exp in sorted(p.parent for p in Path(exp_root).glob("*/config.yaml")):
        for res_path in sorted(exp.glob("decode_*/score/result.json")):
            res = _json(res_path)
            if not res or "word" not in res:
                continue
            # keys: <set>_<setup> (or <set> for dirs named before decoding setups were)
            sets.setdefault(res_path.parent.parent.name[len("decode_"):], []).append((exp.name, res, res_path))
    out = []
    for s in sorted(sets):
        check_comparable({name: (path, res) for name, res, path in sets[s]}, f"the RESULTS table of '{s}'")
        sets[s] = [(name, res) for name, res, _ in sets[s]]
        out += ["", f"## {s}", ""]
        for unit, title in (("word", "WER"), ("char", "CER")):
            out += [f"### {title}", "", "| system | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for name, res in sets[s]:
                c = res.get(unit)
                if not c:
                    continue
                ref = max(1, c["ref"])
                pct = lambda k: f"{100.0 * c[k] / ref:.1f}"  # noqa: E731
                serr = f"{100.0 * c['snt_err'] / max(1, c['snt']):.1f}" if "snt_err" in c else "-"
                out.append(f"| {name} | {c['snt']} | {c['ref']} | {pct('corr')} | {pct('sub')} | {pct('del')} | "
                           f"{pct('ins')} | {pct('err')} | {serr} |")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n" if out else ""


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp-root", default="exp")
    ap.add_argument("--test-set", default="test")
    ap.add_argument("--heldout-set", default="train_heldout")
    ap.add_argument("--setups", default="",
                    help="decoding setups shown side by side (exp/<sys>/decode_<set>_<setup>), e.g. "
                         "'greedy beam20_lm1_ws0'; empty: decode_<set>")
    args = ap.parse_args(argv)
    setups = args.setups.split() or [None]
    rows = collect(args.exp_root, args.test_set, args.heldout_set, setups)
    md = markdown(rows, args.test_set, args.heldout_set, setups) + dataset_tables(args.exp_root)
    atomic_write_text(Path(args.exp_root) / "RESULTS.md", md)
    write_record(args.exp_root, "asr_gr.bin.results", argv, args)
    print(md, end="")


if __name__ == "__main__":
    main()
