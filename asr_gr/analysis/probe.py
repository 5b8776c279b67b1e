"""Speaker probing of a frozen model (the paper's analysis): for the input features (layer 0) and every
encoder layer, pool each utterance over time (mean and standard deviation) and train a fresh speaker classifier (linear, and a small
MLP) on probe-train utterances; report its accuracy on probe-test utterances of the same speakers.
High accuracy = the layer still carries speaker identity; chance = speaker-invariant."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from asr_gr.data.dataset import BucketSampler, collate
from asr_gr.models.speaker import masked_stats


@torch.no_grad()
def pooled_layers(model, datasets, batch_frames: int = 40000,
                  precision: str = "fp32") -> tuple[list[str], list[torch.Tensor]]:
    """Mean and standard deviation over time of layer 0 (the normalised input) and of every encoder
    layer, for every utterance of ``datasets``, with the encoder run on the model's device in
    ``precision`` (pooling in fp32). Returns (utterance ids, [tensor (N, 2 D_l) for l = 0..L]).
    (The standard deviation matters: with per-utterance mean normalisation the input's mean is 0.)"""
    from asr_gr.device import autocast, explain_oom

    model.eval()
    device = next(model.parameters()).device
    utts, per_layer = [], None
    for ds in datasets:
        loader = torch.utils.data.DataLoader(
            ds, batch_sampler=BucketSampler(ds.lengths, batch_frames, shuffle=False), collate_fn=collate)
        for batch in loader:
            feats, lens = batch["feats"].to(device), batch["feat_lens"].to(device)
            with explain_oom(batch_frames, "--batch-frames", device, suggest="--batch-frames {}"), \
                    autocast(device, precision):
                _, out_lens, layers = model.encoder(feats, lens)
                pooled = [masked_stats(feats, lens)] + [masked_stats(x, out_lens) for x in layers]
            if per_layer is None:
                per_layer = [[] for _ in pooled]
            for acc, p in zip(per_layer, pooled):
                acc.append(p.cpu())
            utts += batch["utts"]
    return utts, [torch.cat(p) for p in per_layer]


def split_by_speaker(utts: list[str], spk_of: dict, test_fraction: float = 0.3,
                     seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of probe-train and probe-test utterances; every speaker with >= 2 utterances appears in
    both (the probe classifies *seen* speakers), others are dropped."""
    by_spk: dict[str, list[int]] = {}
    for i, u in enumerate(utts):
        by_spk.setdefault(spk_of[u], []).append(i)
    rng = random.Random(seed)
    train, test = [], []
    for spk in sorted(by_spk):
        idx = sorted(by_spk[spk])
        if len(idx) < 2:
            continue
        rng.shuffle(idx)
        k = min(len(idx) - 1, max(1, round(test_fraction * len(idx))))
        test += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(test)


def train_probe(x_tr, y_tr, x_te, y_te, num_classes: int, kind: str = "linear", epochs: int = 300,
                lr: float = 0.01, weight_decay: float = 1e-3, hidden: int = 256, seed: int = 0) -> float:
    """Accuracy (%) on the test vectors of a classifier trained full-batch on standardised features."""
    g = torch.Generator().manual_seed(seed)
    mean, std = x_tr.mean(0), x_tr.std(0).clamp(min=1e-5)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    d = x_tr.shape[1]
    if kind == "linear":
        net = nn.Linear(d, num_classes)
    elif kind == "mlp":
        net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, num_classes))
    else:
        raise ValueError(f"probe kind '{kind}' is unknown; known: linear, mlp")
    for p in net.parameters():  # deterministic init from the probe's own generator
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * (0.01 if p.dim() > 1 else 0.0))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(epochs):
            net.train()
            loss = F.cross_entropy(net(x_tr), y_tr)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return 100.0 * float((net(x_te).argmax(-1) == y_te).float().mean())


@dataclass
class ProbeRow:
    layer: int
    dim: int
    linear_acc: float
    mlp_acc: float
    chance: float


def probe(model, datasets, *, kinds=("linear", "mlp"), test_fraction: float = 0.3, seed: int = 0,
          epochs: int = 300, batch_frames: int = 40000, precision: str = "fp32") -> list[ProbeRow]:
    """Speaker accuracy per layer (0 = input features) of probes trained on ``datasets``' utterances
    (the frozen model's forward pass in ``precision``; the probes themselves always train in fp32)."""
    utts, layers = pooled_layers(model, datasets, batch_frames, precision)
    spk_of = {u: ds.spk_label[u] for ds in datasets for u in ds.utts}
    tr, te = split_by_speaker(utts, spk_of, test_fraction, seed)
    if not tr or not te:
        raise ValueError("probing needs speakers with at least 2 utterances each")
    speakers = sorted({spk_of[utts[i]] for i in tr})
    sid = {s: i for i, s in enumerate(speakers)}
    y = torch.tensor([sid[spk_of[u]] for u in utts])
    chance = 100.0 * max(int((y[te] == c).sum()) for c in range(len(speakers))) / len(te)
    rows = []
    for layer, x in enumerate(layers):
        acc = {k: train_probe(x[tr], y[tr], x[te], y[te], len(speakers), k, epochs=epochs, seed=seed)
               for k in kinds}
        rows.append(ProbeRow(layer, x.shape[1], acc.get("linear", float("nan")), acc.get("mlp", float("nan")),
                             chance))
    return rows


def plot_probe_curves(curves: dict, out_png, title: str = "Speaker probing per layer") -> None:
    """One line per system: {name: list[ProbeRow]}; MLP accuracy solid, linear dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asr_gr.utils import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, rows in curves.items():
        xs = [r.layer for r in rows]
        line = ax.plot(xs, [r.mlp_acc for r in rows], marker="o", label=f"{name} (MLP)")[0]
        ax.plot(xs, [r.linear_acc for r in rows], ls="--", marker=".", color=line.get_color(),
                label=f"{name} (linear)")
    first = next(iter(curves.values()))
    ax.axhline(first[0].chance, color="grey", lw=1, ls=":", label="chance")
    ax.set_xlabel("layer (0 = input features)")
    ax.set_ylabel("speaker accuracy of the probe %")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
