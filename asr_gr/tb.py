"""TensorBoard event files under ``exp/<tag>/tensorboard/``, so that ``tensorboard --logdir exp`` compares
systems. metrics.jsonl and curves.png stay the record of a run; these files are for looking at it.

    exp/<tag>/tensorboard/train/          training: per step train/{loss,loss_ctc,loss_spk,acc_spk,lambda,lr};
                                          per epoch valid/{loss_ctc,cer,wer}, heldout/acc_spk, train_epoch/*
                                          (all against the global optimiser step)
    exp/<tag>/tensorboard/probe_<set>/    speaker probes: probe/<metric>[/<probe kind>] against the layer

Each is a run of its own: a resumed training run purges what a killed one wrote after its last
checkpoint (``purge_step``), and a rerun probe replaces its run whole, without touching the other.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

TB_DIR = "tensorboard"
STEP_KEYS = ("loss", "loss_ctc", "loss_spk", "acc_spk", "lambda")


def _writer(log_dir, purge_step=None):
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when writing

    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class TrainBoard:
    """The training run's event file. ``last_step`` is the global step of the checkpoint training
    resumes from (0 for a fresh start): events a killed run wrote after it are purged, so curves do
    not fold back. ``enabled=False`` (ranks other than 0) writes nothing."""

    def __init__(self, exp_dir, last_step: int = 0, enabled: bool = True):
        self.writer = _writer(Path(exp_dir) / TB_DIR / "train", purge_step=last_step + 1) if enabled else None

    def step(self, step: int, stats: dict, lr: float) -> None:
        if self.writer is None:
            return
        for k in STEP_KEYS:
            if k in stats:
                self.writer.add_scalar(f"train/{k}", stats[k], step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, step: int, stats: dict) -> None:
        """Per-epoch statistics (the keys of metrics.jsonl): ``valid_cer`` -> valid/cer,
        ``heldout_acc_spk`` -> heldout/acc_spk, ``train_loss_ctc`` -> train_epoch/loss_ctc."""
        if self.writer is None:
            return
        for k, v in stats.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or k in ("epoch", "step", "lr"):
                continue
            head, _, rest = k.partition("_")
            tag = {"valid": f"valid/{rest}", "heldout": f"heldout/{rest}", "train": f"train_epoch/{rest}"}.get(
                head, f"epoch/{k}")
            self.writer.add_scalar(tag, v, step)
        self.writer.flush()

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def log_probe(exp_dir, set_name: str, rows) -> Path:
    """Write speaker-probe results per layer as the run ``exp_dir/tensorboard/probe_<set_name>``,
    replacing an earlier one. ``rows``: dicts with an int ``layer`` (the x axis) and numeric results
    (each a scalar ``probe/<key>``); string fields (e.g. ``probe: linear``) name the curve
    (``probe/<key>/<value>``); None is skipped. Dataclass rows (``analysis.probe.ProbeRow``) work too.
    Returns the run's directory."""
    run = Path(exp_dir) / TB_DIR / f"probe_{set_name}"
    tmp = run.with_name(f".{run.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    w = _writer(tmp)
    try:
        for row in rows:
            row = dataclasses.asdict(row) if dataclasses.is_dataclass(row) else dict(row)
            if "layer" not in row:
                raise ValueError(f"probe row without a 'layer': {row}")
            layer = int(row.pop("layer"))
            names = [str(v) for v in row.values() if isinstance(v, str)]
            for k, v in row.items():
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    continue
                w.add_scalar("/".join(["probe", k, *names]), v, layer)
    finally:
        w.close()
    # A finished run replaces the old one (a probe rerun shows its own numbers only, never a mix).
    shutil.rmtree(run, ignore_errors=True)
    tmp.rename(run)
    return run


def probe_rows_from_tsv(path) -> list[dict]:
    """Rows of a probe table (a header line, then TAB-separated values with a ``layer`` column) as
    ``log_probe`` takes them: numbers where a field parses as one, None for n/a, else the string."""
    lines = [x for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]
    header = lines[0].split("\t") if lines else []
    if "layer" not in header:
        from asr_gr.utils import DataError

        raise DataError(path, 1, "not a probe table: no 'layer' column in the header")
    rows = []
    for line in lines[1:]:
        row = {}
        for k, v in zip(header, line.split("\t")):
            if v.strip().lower() in ("", "n/a", "na", "-"):
                row[k] = None  # undefined for the data at hand: no point on the curve
                continue
            try:
                row[k] = float(v)
            except ValueError:
                row[k] = v
        rows.append(row)
    return rows
