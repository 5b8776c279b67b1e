"""Collect every system under an exp root into RESULTS.md (and print the table).

    python -m asr_gr.bin.results --exp-root exp --test-set test --heldout-set train_heldout

Per system (exp dir with config.yaml): aux head, WER and CER on the test set, speaker accuracy of
the aux head on the held-out utterances of training speakers, and training time. Below that summary,
ESPnet-style tables per decoded set (every exp/*/decode_<set>/score/result.json): Snt, Wrd, and Corr
Sub Del Ins Err S.Err in %, for WER and CER.
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


def collect(exp_root, test_set: str, heldout_set: str | None) -> list[dict]:
    rows, scored = [], {}
    for exp in sorted(p.parent for p in Path(exp_root).glob("*/config.yaml")):
        cfg = load_yaml(exp / "config.yaml")
        res_path = exp / f"decode_{test_set}" / "score" / "result.json"
        res = _json(res_path)
        if res is None:
            continue
        scored[exp.name] = (res_path, res)
        acc = _json(exp / f"decode_{heldout_set}" / "spk_acc.json") if heldout_set else None
        train = _json(exp / "train_summary.json") or {}
        aux_conf = cfg.get("aux_conf") or {}
        per_utt = exp / f"decode_{test_set}" / "score" / "per_utt.json"
        wer_ci = wer_interval(load_system(per_utt.parent, exp.name)) if per_utt.exists() else None
        rows.append({
            "system": exp.name, "aux": cfg.get("aux", "none"),
            "spk_layer": aux_conf.get("spk_layer", "") if cfg.get("aux") != "none" else "",
            "wer": res["wer"], "wer_ci": wer_ci, "cer": res["cer"],
            "enc_grad": encoder_grad_scale(cfg.get("aux", "none"), aux_conf), "snt": res["num_utts"], "spk": res["num_spk"],
            "acc_spk": acc["acc_spk"] if acc else None, "chance": acc["chance"] if acc else None,
            "epochs": train.get("epochs"), "train_seconds": train.get("train_seconds"),
        })
    check_comparable(scored, f"the RESULTS table of '{test_set}'")
    return rows


def markdown(rows: list[dict], test_set: str, heldout_set: str | None) -> str:
    lines = [
        "# RESULTS", "",
        f"Test set `{test_set}` (speakers unseen in training). Speaker accuracy: the aux head on "
        f"`{heldout_set}` (held-out utterances of training speakers; chance in brackets). WER's 95 % "
        "interval: bootstrap over test utterances (1000 draws). enc. grad: the effective scale of the "
        "speaker loss's gradient reaching the encoder, averaged over training (+w for mtl, "
        "-w·mean(λ) for adversarial).", "",
        "| system | aux | spk_layer | enc. grad | #Snt | #Spk | WER % [95% CI] | CER % | spk acc % | epochs "
        "| train time |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        acc = f"{r['acc_spk']:.1f} ({r['chance']:.1f})" if r["acc_spk"] is not None else "-"
        secs = r["train_seconds"]
        t = f"{secs / 60:.1f} min" if secs is not None else "-"
        ci = f" [{r['wer_ci'][0]:.2f}, {r['wer_ci'][1]:.2f}]" if r.get("wer_ci") else ""
        grad = f"{r['enc_grad']:+.2f}" if r.get("enc_grad") is not None else "-"
        lines.append(f"| {r['system']} | {r['aux']} | {r['spk_layer']} | {grad} | {r['snt']} | {r['spk']} | "
                     f"{r['wer']:.2f}{ci} | {r['cer']:.2f} | {acc} | {r['epochs'] or '-'} | {t} |")
    return "\n".join(lines) + "\n"


def dataset_tables(exp_root) -> str:
    """ESPnet-style per-set tables: one per decoded set, a row per system, WER and CER counts (%)."""
    sets: dict[str, list] = {}
    for exp in sorted(p.parent for p in Path(exp_root).glob("*/config.yaml")):
        for res_path in sorted(exp.glob("decode_*/score/result.json")):
            res = _json(res_path)
            if not res or "word" not in res:
                continue
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
    args = ap.parse_args(argv)
    rows = collect(args.exp_root, args.test_set, args.heldout_set)
    md = markdown(rows, args.test_set, args.heldout_set) + dataset_tables(args.exp_root)
    atomic_write_text(Path(args.exp_root) / "RESULTS.md", md)
    write_record(args.exp_root, "asr_gr.bin.results", argv, args)
    print(md, end="")


if __name__ == "__main__":
    main()
