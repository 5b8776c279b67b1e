"""Training curves (loss_ctc, loss_spk, acc_spk, valid CER/WER per epoch) as a PNG, from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from asr_gr.utils import atomic_path

PANELS = (
    ("CTC loss", ("train_loss_ctc", "valid_loss_ctc")),
    ("speaker loss", ("train_loss_spk",)),
    ("speaker accuracy %", ("train_acc_spk", "heldout_acc_spk")),
    ("valid CER/WER %", ("valid_cer", "valid_wer")),
)


def read_metrics(path) -> list[dict]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    # A resumed run may repeat an epoch it had logged before being killed: keep the last record.
    by_epoch = {r["epoch"]: r for r in rows}
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_curves(metrics_path, out_png, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    panels = [(name, [k for k in keys if any(k in r for r in rows)]) for name, keys in PANELS]
    panels = [(name, keys) for name, keys in panels if keys]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (name, keys) in zip(axes[0], panels):
        for k in keys:
            pts = [(r["epoch"], r[k] * (100.0 if k == "train_acc_spk" else 1.0)) for r in rows if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=k)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
