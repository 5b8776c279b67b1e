"""Speaker probing of a frozen model (the paper's analysis), with intervals.

For the input features (layer 0) and every encoder layer, each utterance is pooled over time (mean and
standard deviation over its valid frames). The utterances of a probe set are split, per speaker, into
probe-train and probe-test utterances of the *same* speakers; then per layer:

* **identification**: a fresh linear and a small MLP classifier are trained on probe-train and scored on
  probe-test; accuracy with a 95 % bootstrap interval over the test utterances (chance = the most
  frequent test speaker's share);
* **verification EER**: cosine scores of (probe-train utterance, probe-test utterance) trials after
  standardising every dimension with the mean and standard deviation of the probe-train vectors (no
  labels used); all target trials (same speaker) and non-target trials sampled (seeded) to
  ``num_nontarget``; the EER is the exact crossing of the ROC's miss and false-alarm rates (linear
  between adjacent operating points); its 95 % interval comes from a bootstrap over speakers (a trial
  belongs to the speaker of its test utterance; n/a with fewer than ``MIN_BOOT_SPEAKERS`` speakers).

High accuracy / low EER = the layer still carries speaker identity. Per-utterance correctness and
per-trial scores are written beside the table, so that two systems probed on the same set can be
compared *paired* (``compare_probe_dirs``: same utterances, same trials, same bootstrap draws).
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asr_gr.data.dataset import BucketSampler, collate
from asr_gr.models.speaker import masked_stats
from asr_gr.utils import DataError, atomic_path, atomic_write_text

log = logging.getLogger(__name__)

MIN_BOOT_SPEAKERS = 5  # a speaker-level bootstrap over fewer speakers is n/a
MIN_BOOT_UTTS = 5  # an utterance-level bootstrap over fewer test utterances is n/a
NA = "n/a"


# ---------------------------------------------------------------------------------------------------
# pooled layer outputs


@torch.no_grad()
def pooled_layers(model, datasets, batch_frames: int = 40000,
                  precision: str = "fp32") -> tuple[list[str], list[torch.Tensor]]:
    """Mean and standard deviation over time of layer 0 (the normalised input) and of every encoder
    layer, for every utterance of ``datasets``, padding masked, with the encoder run on the model's
    device in ``precision`` (pooling in fp32). Returns (sorted utterance ids, [tensor (N, 2 D_l) for
    l = 0..L]) in that order, whatever the batching.
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
            pooled = [masked_stats(feats, lens)] + [masked_stats(x.float(), out_lens) for x in layers]
            if per_layer is None:
                per_layer = [[] for _ in pooled]
            for acc, p in zip(per_layer, pooled):
                acc.append(p.float().cpu())
            utts += batch["utts"]
    if len(set(utts)) != len(utts):
        dup = next(u for u in utts if utts.count(u) > 1)
        raise DataError(datasets[0].dir, None, f"utterance '{dup}' occurs in more than one probe set")
    order = sorted(range(len(utts)), key=lambda i: utts[i])
    return [utts[i] for i in order], [torch.cat(p)[order] for p in per_layer]


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


# ---------------------------------------------------------------------------------------------------
# identification probes


def fit_predict(x_tr, y_tr, x_te, num_classes: int, kind: str = "linear", epochs: int = 300,
                lr: float = 0.01, weight_decay: float = 1e-3, hidden: int = 256, seed: int = 0) -> torch.Tensor:
    """Predicted classes of the test vectors by a classifier trained full-batch on standardised features."""
    g = torch.Generator().manual_seed(seed)
    mean, std = x_tr.mean(0), x_tr.std(0).nan_to_num(1.0).clamp(min=1e-5)
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
        return net(x_te).argmax(-1)


def train_probe(x_tr, y_tr, x_te, y_te, num_classes: int, kind: str = "linear", **kw) -> float:
    """Accuracy (%) on the test vectors of a classifier trained full-batch on standardised features."""
    return 100.0 * float((fit_predict(x_tr, y_tr, x_te, num_classes, kind, **kw) == y_te).float().mean())


# ---------------------------------------------------------------------------------------------------
# statistics: intervals, EER


def _pct(d: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(d, [2.5, 97.5])
    return float(lo), float(hi)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n, in %."""
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100.0 * max(0.0, c - h), 100.0 * min(1.0, c + h)


def accuracy_ci(correct: np.ndarray, num_samples: int = 1000, seed: int = 0) -> tuple[float, tuple]:
    """Accuracy % and its 95 % percentile-bootstrap interval over test utterances. Where every test
    utterance is right (or every one wrong) the bootstrap has zero width; the Wilson score interval is
    given there instead. The interval is (nan, nan) (n/a) below MIN_BOOT_UTTS utterances."""
    correct = np.asarray(correct, dtype=np.float64)
    n = len(correct)
    if n == 0:
        return float("nan"), (float("nan"), float("nan"))
    acc = 100.0 * correct.mean()
    if n < MIN_BOOT_UTTS:
        return float(acc), (float("nan"), float("nan"))
    k = int(correct.sum())
    if k in (0, n):
        return float(acc), wilson(k, n)
    idx = np.random.default_rng(seed).integers(0, n, size=(num_samples, n))
    return float(acc), _pct(100.0 * correct[idx].mean(1))


def _roc_eer(cum_t: np.ndarray, cum_n: np.ndarray) -> np.ndarray:
    """EER % per row from cumulative target / non-target weights at the operating points (scores
    accepted from the top, one point per distinct score). Rows with no target or no non-target weight
    give nan."""
    tot_t, tot_n = cum_t[:, -1:], cum_n[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        far = np.concatenate([np.zeros_like(tot_n), cum_n / tot_n], axis=1)
        frr = np.concatenate([np.ones_like(tot_t), 1.0 - cum_t / tot_t], axis=1)
    d = frr - far  # from +1 (accept nothing) down to -1 (accept everything)
    k = np.argmax(d <= 0, axis=1)
    k = np.maximum(k, 1)
    r = np.arange(len(d))
    d0, d1 = d[r, k - 1], d[r, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(d1 == 0, 1.0, d0 / (d0 - d1))
    eer = far[r, k - 1] + t * (far[r, k] - far[r, k - 1])
    bad = (tot_t[:, 0] <= 0) | (tot_n[:, 0] <= 0)
    return np.where(bad, np.nan, 100.0 * eer)


def _sorted_groups(scores: np.ndarray):
    """Order of the scores (descending) and the last index of each group of tied scores in it."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return order, ends


def eer(scores, target) -> float:
    """Equal error rate % of trials: ``scores`` (higher = same speaker) and ``target`` (bool). The
    crossing of miss and false-alarm rates, linear between adjacent operating points (ties count as
    one point); nan without target or non-target trials."""
    scores, target = np.asarray(scores, dtype=np.float64), np.asarray(target, dtype=bool)
    if len(scores) == 0:
        return float("nan")
    order, ends = _sorted_groups(scores)
    t = target[order].astype(np.float64)
    return float(_roc_eer(np.cumsum(t)[ends][None], np.cumsum(1 - t)[ends][None])[0])


def speaker_draws(groups: list, num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws of speakers: (the group index of every item, counts (B, S) of each speaker)."""
    names = sorted(set(groups))
    index = {n: i for i, n in enumerate(names)}
    gid = np.array([index[g] for g in groups], dtype=np.int64)
    s = len(names)
    draws = np.random.default_rng(seed).integers(0, s, size=(num_samples, s))
    counts = np.zeros((num_samples, s), dtype=np.float32)
    np.add.at(counts, (np.arange(num_samples)[:, None], draws), 1.0)
    return gid, counts


def _eers_of_draws(scores, target, gid, counts) -> np.ndarray:
    """EER % of every bootstrap draw of speakers (``counts`` (B, S): how often each speaker is drawn; a
    trial of speaker ``gid[i]`` counts that many times), as :func:`eer` of the trials so repeated.

    A draw's cumulative target / non-target weight at operating point k is its counts times the
    per-speaker cumulative trial counts there, so the crossing of miss and false-alarm rates is found by
    bisection over the points (the miss rate falls and the false-alarm rate rises with k), in exact
    integer arithmetic: O(B S log K) instead of the O(B K) of building every draw's curve."""
    order, ends = _sorted_groups(np.asarray(scores, dtype=np.float64))
    t = np.asarray(target, dtype=bool)[order]
    g = np.asarray(gid)[order]
    n_spk, n_pts = counts.shape[1], len(ends)
    # per speaker, its target / non-target trials at or above each point; row 0: accept nothing
    ct = np.zeros((n_pts + 1, n_spk))
    cn = np.zeros((n_pts + 1, n_spk))
    np.add.at(ct, (1 + np.searchsorted(ends, np.flatnonzero(t)), g[t]), 1.0)
    np.add.at(cn, (1 + np.searchsorted(ends, np.flatnonzero(~t)), g[~t]), 1.0)
    ct, cn = np.cumsum(ct, axis=0), np.cumsum(cn, axis=0)
    c = counts.astype(np.float64)
    tot_t, tot_n = c @ ct[-1], c @ cn[-1]

    def at(k):  # (cumulative target weight, cumulative non-target weight) of every draw at its point k
        return np.einsum("bs,bs->b", c, ct[k]), np.einsum("bs,bs->b", c, cn[k])

    # first point k >= 1 where the miss rate <= the false-alarm rate: 1 - wt/T <= wn/N, i.e.
    # N wt + T wn >= N T (exact: integer weights); it holds at k = K, where wt = T and wn = N
    lo, hi = np.ones(len(c), dtype=np.int64), np.full(len(c), n_pts, dtype=np.int64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        wt, wn = at(mid)
        ok = tot_n * wt + tot_t * wn >= tot_n * tot_t
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        (wt0, wn0), (wt1, wn1) = at(lo - 1), at(lo)
        far0, far1 = wn0 / tot_n, wn1 / tot_n
        d0, d1 = (1.0 - wt0 / tot_t) - far0, (1.0 - wt1 / tot_t) - far1
        frac = np.where(d1 == 0, 1.0, d0 / (d0 - d1))
        out = 100.0 * (far0 + frac * (far1 - far0))
    return np.where((tot_t <= 0) | (tot_n <= 0), np.nan, out)


def eer_ci(scores, target, groups, num_samples: int = 1000, seed: int = 0) -> tuple[float, tuple]:
    """EER % and its 95 % interval from a bootstrap over speakers (``groups``: the speaker each trial
    belongs to); the interval is n/a (nan) with fewer than MIN_BOOT_SPEAKERS speakers."""
    e = eer(scores, target)
    if math.isnan(e) or len(set(groups)) < MIN_BOOT_SPEAKERS:
        return e, (float("nan"), float("nan"))
    gid, counts = speaker_draws(groups, num_samples, seed)
    return e, _pct(_eers_of_draws(scores, target, gid, counts))


# ---------------------------------------------------------------------------------------------------
# trials


def make_trials(spk: list, train: list[int], test: list[int], num_nontarget: int = 20000,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verification trials (enrolment = a probe-train utterance, test = a probe-test utterance): every
    target pair (same speaker) and ``num_nontarget`` non-target pairs drawn without replacement
    (all of them when there are fewer), seeded. Returns (enrol indices, test indices, target), sorted by
    (test, enrol)."""
    tr, te = np.asarray(train), np.asarray(test)
    s_tr = np.array([spk[i] for i in tr], dtype=object)
    s_te = np.array([spk[i] for i in te], dtype=object)
    same = s_te[:, None] == s_tr[None, :]  # (n_test, n_train)
    ti, ei = np.nonzero(same)
    ni, nj = np.nonzero(~same)
    if len(ni) > num_nontarget:
        pick = np.sort(np.random.default_rng(seed).choice(len(ni), size=num_nontarget, replace=False))
        ni, nj = ni[pick], nj[pick]
    test_i = np.concatenate([ti, ni])
    enrol_i = np.concatenate([ei, nj])
    target = np.concatenate([np.ones(len(ti), bool), np.zeros(len(ni), bool)])
    order = np.lexsort((enrol_i, test_i))
    return tr[enrol_i[order]], te[test_i[order]], target[order]


def cosine_scores(x: torch.Tensor, train: list[int], enrol: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine similarity of trial pairs after standardising with the probe-train vectors' statistics."""
    x = x.double()
    mean, std = x[train].mean(0), x[train].std(0).nan_to_num(1.0).clamp(min=1e-5)
    z = F.normalize((x - mean) / std, dim=1)
    return (z[torch.as_tensor(enrol)] * z[torch.as_tensor(test)]).sum(1).numpy()


# ---------------------------------------------------------------------------------------------------
# probing a set


@dataclass
class ProbeRow:
    layer: int
    dim: int
    linear_acc: float
    mlp_acc: float
    chance: float
    linear_ci: tuple = (float("nan"), float("nan"))
    mlp_ci: tuple = (float("nan"), float("nan"))
    eer: float = float("nan")
    eer_ci: tuple = (float("nan"), float("nan"))


@dataclass
class ProbeResult:
    set_name: str
    rows: list
    test_utts: list  # probe-test utterances scored by the identification probes
    test_spk: list
    correct: dict  # (layer, kind) -> bool array over test_utts
    trials: tuple  # (enrol utts, test utts, test speakers, target)
    scores: list  # per layer: array over trials
    meta: dict = field(default_factory=dict)


def check_speakers(name: str, spk_of: dict, where) -> None:
    """A probe set needs at least 2 speakers (checked before any forward pass)."""
    n = len(set(spk_of.values()))
    if n < 2:
        raise DataError(where, None, f"probe set '{name}' has {n} speaker(s) ({len(spk_of)} utterances); "
                        "speaker probing needs at least 2")


def probe(model, datasets, *, kinds=("linear", "mlp"), test_fraction: float = 0.3, seed: int = 0,
          epochs: int = 300, num_nontarget: int = 20000, num_samples: int = 1000,
          set_name: str | None = None, batch_frames: int = 40000, precision: str = "fp32") -> ProbeResult:
    """Speaker identification accuracy and verification EER per layer (0 = input features), with 95 %
    intervals, on the utterances of ``datasets`` (pooled into one probe set); the frozen model's
    forward pass in ``precision``, the probes themselves always train in fp32."""
    name = set_name or "+".join(Path(ds.dir).name for ds in datasets)
    where = datasets[0].dir / "utt2spk"
    spk_of = {u: ds.spk_label[u] for ds in datasets for u in ds.utts}
    check_speakers(name, spk_of, where)
    utts, layers = pooled_layers(model, datasets, batch_frames, precision)
    return probe_layers(name, utts, layers, spk_of, where, kinds=kinds, test_fraction=test_fraction, seed=seed,
                        epochs=epochs, num_nontarget=num_nontarget, num_samples=num_samples,
                        meta={"data_dirs": [str(ds.dir) for ds in datasets]})


def probe_layers(name: str, utts: list[str], layers: list[torch.Tensor], spk_of: dict, where, *,
                 kinds=("linear", "mlp"), test_fraction: float = 0.3, seed: int = 0, epochs: int = 300,
                 num_nontarget: int = 20000, num_samples: int = 1000, meta: dict | None = None) -> ProbeResult:
    """The probes of :func:`probe` on pooled layer outputs of any model: ``utts`` sorted, ``layers`` one
    tensor (N, D_l) per layer in that order, ``spk_of`` every utterance's speaker, ``where`` the file
    errors name. The split and the trials depend only on ``utts``, their speakers, ``test_fraction``,
    ``seed`` and ``num_nontarget``, never on the model, so any two models probed on the same set pair."""
    from tqdm import tqdm

    check_speakers(name, spk_of, where)
    per_spk = {s: 0 for s in set(spk_of.values())}
    for u in utts:
        per_spk[spk_of[u]] += 1
    single = sorted(s for s, n in per_spk.items() if n < 2)
    if single:
        log.info("probe set '%s': %d speaker(s) with a single utterance left out of identification and "
                 "verification (e.g. %s)", name, len(single), single[0])
    tr, te = split_by_speaker(utts, spk_of, test_fraction, seed)
    speakers = sorted({spk_of[utts[i]] for i in tr})
    if len(speakers) < 2:
        raise DataError(where, None, f"probe set '{name}' has {len(speakers)} speaker(s) with at least 2 "
                        "utterances; speaker probing needs at least 2")
    sid = {s: i for i, s in enumerate(speakers)}
    spk_list = [spk_of[u] for u in utts]
    y = torch.tensor([sid.get(s, -1) for s in spk_list])
    chance = 100.0 * max(int((y[te] == c).sum()) for c in range(len(speakers))) / len(te)
    enrol, test, target = make_trials(spk_list, tr, te, num_nontarget, seed)
    test_groups = [spk_list[i] for i in test]
    correct, scores, rows = {}, [], []
    for layer, x in enumerate(tqdm(layers, desc=f"probing {name}", unit="layer", disable=None)):
        x = x.float()  # the probes train in fp32, whatever the pooled vectors came as
        accs = {}
        for k in ("linear", "mlp"):
            if k in kinds:
                ok = (fit_predict(x[tr], y[tr], x[te], len(speakers), k, epochs=epochs, seed=seed)
                      == y[te]).numpy()
                correct[(layer, k)] = ok
                accs[k] = accuracy_ci(ok, num_samples, seed)
            else:
                accs[k] = (float("nan"), (float("nan"), float("nan")))
        sc = cosine_scores(x, tr, enrol, test)
        scores.append(sc)
        e, eci = eer_ci(sc, target, test_groups, num_samples, seed)
        rows.append(ProbeRow(layer, x.shape[1], accs["linear"][0], accs["mlp"][0], chance,
                             accs["linear"][1], accs["mlp"][1], e, eci))
    meta = {"set": name, **(meta or {}), "speakers": len(speakers),
            "single_utterance_speakers_left_out": len(single), "probe_train_utts": len(tr),
            "probe_test_utts": len(te), "test_fraction": test_fraction, "chance_acc": chance,
            "target_trials": int(target.sum()), "nontarget_trials": int((~target).sum()),
            "num_nontarget": num_nontarget, "seed": seed, "bootstrap_draws": num_samples,
            "epochs": epochs, "eer_normalisation": "standardised with probe-train mean and std; cosine",
            "eer_ci": f"bootstrap over test speakers (n/a below {MIN_BOOT_SPEAKERS})",
            "acc_ci": "bootstrap over probe-test utterances (Wilson where all right or all wrong)",
            "saturation": saturation(rows), "saturation_rule": SATURATION_RULE}
    return ProbeResult(name, rows, [utts[i] for i in te], [spk_list[i] for i in te], correct,
                       ([utts[i] for i in enrol], [utts[i] for i in test], test_groups, target), scores, meta)


# ---------------------------------------------------------------------------------------------------
# saturation: a probe whose every layer sits at the ceiling (or at chance) ranks nothing

SAT_KINDS = ("linear", "mlp", "eer")
SATURATION_RULE = ("per probe, over all layers: 'ceiling' where every layer's 95 % CI reaches perfect "
                   "(accuracy upper bound 100 %, EER lower bound 0 %), 'chance' where no layer's CI lies clear "
                   "of chance (accuracy lower bound <= chance, EER upper bound >= 50 %), 'ceiling+chance' both, "
                   "'ok' otherwise, 'n/a' where an interval is undefined; bounds as printed (2 decimals)")


def saturation_of(values: list[tuple], perfect: float, chance: list[float]) -> str:
    """Verdict over the layers of one probe: ``values`` = per layer (estimate, (lo, hi)); ``perfect`` 100
    for an accuracy, 0 for an EER; ``chance`` per layer. See SATURATION_RULE."""
    if not values or any(math.isnan(v) or math.isnan(ci[0]) or math.isnan(ci[1]) for v, ci in values):
        return NA
    lo = [round(ci[0], 2) for _, ci in values]
    hi = [round(ci[1], 2) for _, ci in values]
    ch = [round(c, 2) for c in chance]
    if perfect > 0:  # accuracy: higher is better
        ceiling = all(h >= perfect for h in hi)
        at_chance = all(lo_ <= c for lo_, c in zip(lo, ch))
    else:  # EER: lower is better
        ceiling = all(lo_ <= perfect for lo_ in lo)
        at_chance = all(h >= c for h, c in zip(hi, ch))
    return {(True, True): "ceiling+chance", (True, False): "ceiling", (False, True): "chance"}.get(
        (ceiling, at_chance), "ok")


def saturation(rows: list) -> dict:
    """{'linear' | 'mlp' | 'eer': verdict} of a probe table (list of ProbeRow); see SATURATION_RULE."""
    return {"linear": saturation_of([(r.linear_acc, r.linear_ci) for r in rows], 100.0, [r.chance for r in rows]),
            "mlp": saturation_of([(r.mlp_acc, r.mlp_ci) for r in rows], 100.0, [r.chance for r in rows]),
            "eer": saturation_of([(r.eer, r.eer_ci) for r in rows], 0.0, [50.0] * len(rows))}


SAT_WHAT = {"linear": "linear-probe accuracy", "mlp": "MLP-probe accuracy", "eer": "verification EER"}
SAT_MEANS = {"ceiling": "at the ceiling (every layer's 95 % CI reaches {perfect})",
             "chance": "at chance (no layer's 95 % CI lies clear of chance)",
             "ceiling+chance": "uninformative (every layer's 95 % CI reaches both {perfect} and chance)"}


SATURATION_NOTE = ("saturated on every layer (ceiling: every layer's 95 % CI reaches perfect, 100 % accuracy or "
                   "0 % EER; chance: no layer's CI lies clear of chance), so such a probe ranks neither the layers nor "
                   "the systems on this set")


def saturation_warnings(verdicts: dict) -> list[str]:
    """One sentence per saturated probe, e.g. "linear-probe accuracy is at the ceiling (...) on every
    layer: it cannot rank the layers or the systems"."""
    out = []
    for k in SAT_KINDS:
        v = verdicts.get(k, NA)
        if v in SAT_MEANS:
            perfect = "0 %" if k == "eer" else "100 %"
            out.append(f"{SAT_WHAT[k]} is {SAT_MEANS[v].format(perfect=perfect)}: it cannot rank the layers "
                       "or the systems on this set")
    return out


def saturation_short(verdicts: dict, kinds=SAT_KINDS) -> str:
    """'linear acc ceiling, MLP acc ceiling' (empty when nothing is saturated)."""
    name = {"linear": "linear acc", "mlp": "MLP acc", "eer": "EER"}
    return ", ".join(f"{name[k]} {verdicts[k]}" for k in kinds if verdicts.get(k, NA) in SAT_MEANS)


# ---------------------------------------------------------------------------------------------------
# files of a probe dir: probe.tsv, per_utt.tsv, trials.tsv, probe.json

HEADER_V1 = ("set\tlayer\tdim\tlinear_acc\tlinear_lo\tlinear_hi\tmlp_acc\tmlp_lo\tmlp_hi\tchance"
             "\teer\teer_lo\teer_hi")
# + the saturation verdict of each probe over all layers (the same in every row; SATURATION_RULE)
HEADER = HEADER_V1 + "".join(f"\t{k}_sat" for k in SAT_KINDS)


def fmt(v: float, spec: str = ".2f") -> str:
    return NA if v is None or math.isnan(v) else format(v, spec)


def _num(s: str) -> float:
    return float("nan") if s == NA else float(s)


def write_probe_dir(out, res: ProbeResult) -> None:
    out = Path(out)
    lines = [HEADER]
    sat = saturation(res.rows)
    for r in res.rows:
        lines.append("\t".join([res.set_name, str(r.layer), str(r.dim), fmt(r.linear_acc), fmt(r.linear_ci[0]),
                                fmt(r.linear_ci[1]), fmt(r.mlp_acc), fmt(r.mlp_ci[0]), fmt(r.mlp_ci[1]),
                                fmt(r.chance), fmt(r.eer), fmt(r.eer_ci[0]), fmt(r.eer_ci[1]),
                                *(sat[k] for k in SAT_KINDS)]))
    n_layers = len(res.rows)
    kinds = [k for k in ("linear", "mlp") if (0, k) in res.correct]
    pu = ["utt\tspk\t" + "\t".join(f"L{layer}_{k}" for layer in range(n_layers) for k in kinds)]
    for i, (u, s) in enumerate(zip(res.test_utts, res.test_spk)):
        pu.append(f"{u}\t{s}\t" + "\t".join(str(int(res.correct[(layer, k)][i]))
                                           for layer in range(n_layers) for k in kinds))
    enrol, test, groups, target = res.trials
    tl = ["enrol\ttest\ttest_spk\ttarget\t" + "\t".join(f"L{layer}" for layer in range(n_layers))]
    for j in range(len(target)):
        tl.append(f"{enrol[j]}\t{test[j]}\t{groups[j]}\t{int(target[j])}\t"
                  + "\t".join(f"{s[j]:.6f}" for s in res.scores))
    atomic_write_text(out / "per_utt.tsv", "\n".join(pu) + "\n")
    atomic_write_text(out / "trials.tsv", "\n".join(tl) + "\n")
    atomic_write_text(out / "probe.json", json.dumps(res.meta, indent=1) + "\n")
    atomic_write_text(out / "probe.tsv", "\n".join(lines) + "\n")  # last: its presence means complete


def read_tsv(path) -> list[ProbeRow]:
    """The rows of a probe.tsv (this version's, or one written before the saturation columns: the
    verdict is :func:`saturation` of the rows either way)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] not in (HEADER, HEADER_V1):
        raise DataError(path, 1, f"not a probe table of this version (expected the header '{HEADER}'; "
                        "rerun stage 6)")
    width = len(lines[0].split("\t"))
    rows = []
    for i, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        try:
            v = [_num(x) for x in f[3:13]]
            if len(f) != width:
                raise ValueError
            rows.append(ProbeRow(int(f[1]), int(f[2]), v[0], v[3], v[6], (v[1], v[2]), (v[4], v[5]), v[7],
                                 (v[8], v[9])))
        except (ValueError, IndexError):
            raise DataError(path, i, f"bad row {line!r}") from None
    return rows


def _read_rows(path, what: str) -> tuple[list[str], list[list[str]]]:
    p = Path(path)
    if not p.exists():
        raise DataError(p, None, f"{what} does not exist (rerun stage 6 probing)")
    lines = p.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise DataError(p, 1, f"empty {what}")
    head = lines[0].split("\t")
    rows = []
    for i, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        if len(f) != len(head):
            raise DataError(p, i, f"{len(f)} fields, the header has {len(head)}")
        rows.append(f)
    return head, rows


def load_per_utt(probe_dir) -> tuple[list[str], list[str], dict]:
    """(utts, speakers, {column name: bool array}) of a probe dir's per_utt.tsv."""
    head, rows = _read_rows(Path(probe_dir) / "per_utt.tsv", "per_utt.tsv")
    cols = {h: np.array([r[k] == "1" for r in rows]) for k, h in enumerate(head) if k >= 2}
    return [r[0] for r in rows], [r[1] for r in rows], cols


def load_trials(probe_dir) -> tuple[list[tuple], list[str], np.ndarray, dict]:
    """(trial keys (enrol, test), test speakers, target, {"L<l>": scores}) of a probe dir's trials.tsv."""
    p = Path(probe_dir) / "trials.tsv"
    head, rows = _read_rows(p, "trials.tsv")
    try:
        scores = {h: np.array([float(r[k]) for r in rows]) for k, h in enumerate(head) if k >= 4}
    except ValueError as e:
        raise DataError(p, None, f"a score is not a number ({e})") from None
    return [(r[0], r[1]) for r in rows], [r[2] for r in rows], np.array([r[3] == "1" for r in rows]), scores


# ---------------------------------------------------------------------------------------------------
# paired comparison of two systems probed on the same set


@dataclass
class DeltaRow:
    layer: int
    linear: tuple  # (delta, (lo, hi)) of accuracy B - A, %
    mlp: tuple
    eer: tuple  # (delta, (lo, hi)) of EER B - A, %


def paired_acc(a: np.ndarray, b: np.ndarray, num_samples: int = 1000, seed: int = 0) -> tuple:
    """Accuracy difference B - A (%) of the same test utterances and its paired-bootstrap 95 % CI."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    if n == 0:
        return float("nan"), (float("nan"), float("nan"))
    d = float(100.0 * (b.mean() - a.mean()))
    if n < MIN_BOOT_UTTS:
        return d, (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, n, size=(num_samples, n))
    return d, _pct(100.0 * (b[idx].mean(1) - a[idx].mean(1)))


def paired_eer(sa, sb, target, groups, num_samples: int = 1000, seed: int = 0) -> tuple:
    """EER difference B - A (%) on the same trials and its 95 % CI from the same speaker draws."""
    d = eer(sb, target) - eer(sa, target)
    if math.isnan(d) or len(set(groups)) < MIN_BOOT_SPEAKERS:
        return d, (float("nan"), float("nan"))
    gid, counts = speaker_draws(groups, num_samples, seed)
    return d, _pct(_eers_of_draws(sb, target, gid, counts) - _eers_of_draws(sa, target, gid, counts))


def compare_probe_dirs(dir_a, dir_b, num_samples: int = 1000, seed: int = 0) -> list[DeltaRow]:
    """Per layer: Δ accuracy (linear, MLP) and Δ EER of system B against A with paired 95 % CIs.
    Both probe dirs must hold the same test utterances and the same trials (else DataError)."""
    ua, sa, ca = load_per_utt(dir_a)
    ub, sb, cb = load_per_utt(dir_b)
    if ua != ub or sa != sb:
        only = sorted(set(ua) ^ set(ub))
        raise DataError(Path(dir_b) / "per_utt.tsv", None,
                        f"probed on other test utterances than {dir_a} (e.g. '{only[0] if only else '?'}'); "
                        "a paired comparison needs the same set, split and seed")
    _, ga, ta, xa, xb = load_paired_trials(dir_a, dir_b)
    out = []
    n_layers = min(len(xa), len(xb))
    for layer in range(n_layers):
        acc = {}
        for k in ("linear", "mlp"):
            col = f"L{layer}_{k}"
            acc[k] = paired_acc(ca[col], cb[col], num_samples, seed) if col in ca and col in cb else \
                (float("nan"), (float("nan"), float("nan")))
        out.append(DeltaRow(layer, acc["linear"], acc["mlp"],
                            paired_eer(xa[f"L{layer}"], xb[f"L{layer}"], ta, ga, num_samples, seed)))
    return out


def load_paired_trials(dir_a, dir_b) -> tuple:
    """(trial keys, test speakers, target, scores of A, scores of B) of two probe dirs that hold the same
    trials (else DataError naming B's trials.tsv)."""
    ka, ga, ta, xa = load_trials(dir_a)
    kb, gb, tb, xb = load_trials(dir_b)
    if ka != kb or ga != gb or ta.tolist() != tb.tolist():
        raise DataError(Path(dir_b) / "trials.tsv", None,
                        f"other trials than {dir_a}; a paired comparison needs the same set, split, seed "
                        "and --num-nontarget")
    return ka, ga, ta, xa, xb


# ---------------------------------------------------------------------------------------------------
# power: how the speaker-bootstrap interval of the EER (or of a paired Δ EER) narrows with speakers

Z95, Z80 = 1.959964, 0.841621  # two-sided 95 %; one-sided 80 % power


@dataclass
class PowerResult:
    set_speakers: int  # speakers of the probe set (with test trials)
    sizes: list  # measured speaker counts (the last: the whole set)
    layers: list
    half_width: dict  # (layer, n) -> (mean half-width, its s.d. over subsets, subsets)
    scale: dict  # layer -> c of the fit half-width = c / sqrt(n)
    exponent: dict  # layer -> slope of log half-width on log n (-0.5 where 1/sqrt(n) holds; nan: < 2 sizes)
    fit_sizes: list  # the sizes the fit used
    paired: bool
    meta: dict = field(default_factory=dict)

    def predicted(self, layer: int, n: float) -> float:
        return self.scale[layer] / math.sqrt(n)

    def needed(self, layer: int, delta: float, power: bool = False) -> float:
        """Speakers for a half-width <= ``delta`` (an observed Δ that large excludes 0), or with
        ``power`` <= delta * z95 / (z95 + z80) (80 % power to find a true Δ of ``delta``); at least
        MIN_BOOT_SPEAKERS (the interval is n/a below). nan where the interval has no width (c = 0: e.g. a
        paired Δ of two systems whose layer is the same, such as layer 0, the input features)."""
        c = self.scale[layer]
        if not c > 0 or delta <= 0:
            return float("nan")
        target = delta * Z95 / (Z95 + Z80) if power else delta
        return float(max(MIN_BOOT_SPEAKERS, math.ceil((c / target) ** 2)))


def power_sizes(n_speakers: int) -> list[int]:
    """5, 10, 20, 40, ... below the set's speaker count, then the set itself."""
    sizes, n = [], MIN_BOOT_SPEAKERS
    while n < n_speakers:
        sizes.append(n)
        n *= 2
    return sizes + [n_speakers]


def eer_power(dir_a, dir_b=None, *, sizes=None, subsets: int = 20, num_samples: int = 1000, seed: int = 0,
              layers=None) -> PowerResult:
    """Half-width of the 95 % speaker-bootstrap interval of the EER of probe dir ``dir_a`` (or, with
    ``dir_b``, of the paired Δ EER B − A on their shared trials) per layer, on random subsets of n
    speakers of the set (``subsets`` subsets per n; a subset keeps the trials whose test and enrolment
    speakers are both in it, as a set of those n speakers would have), n = ``sizes`` (default
    :func:`power_sizes`); the whole set is measured once, with the same draws as probe.tsv's interval.
    Then fitted as c / sqrt(n) over n >= 10 (all sizes where fewer than 2 are >= 10)."""
    dir_a = Path(dir_a)
    if dir_b is None:
        keys, groups, target, xa = load_trials(dir_a)
        xb = None
    else:
        keys, groups, target, xa, xb = load_paired_trials(dir_a, dir_b)
    where = Path(dir_b or dir_a) / "trials.tsv"
    spk_of_enrol = {e: g for (e, _), g, t in zip(keys, groups, target) if t}
    missing = next((e for e, _ in keys if e not in spk_of_enrol), None)
    if missing is not None:
        raise DataError(where, None, f"enrolment utterance '{missing}' has no target trial, so its speaker "
                        "is unknown (not a trials.tsv of asr_gr.bin.probe?)")
    names = sorted(set(groups))
    index = {g: i for i, g in enumerate(names)}
    n_spk = len(names)
    if n_spk < MIN_BOOT_SPEAKERS:
        raise DataError(where, None, f"{n_spk} test speakers; a speaker-bootstrap power table needs at least "
                        f"{MIN_BOOT_SPEAKERS}")
    gi = np.array([index[g] for g in groups])
    ge = np.array([index[spk_of_enrol[e]] for e, _ in keys])  # a target trial's speaker is a test speaker
    layer_names = sorted(xa, key=lambda h: int(h[1:]))
    layers = [int(h[1:]) for h in layer_names] if layers is None else list(layers)
    for layer in layers:
        if f"L{layer}" not in xa or (xb is not None and f"L{layer}" not in xb):
            raise DataError(where, 1, f"no layer {layer} (the probe has layers 0..{len(layer_names) - 1})")
    sizes = sorted(set(power_sizes(n_spk) if sizes is None else [int(n) for n in sizes]))
    bad = [n for n in sizes if not MIN_BOOT_SPEAKERS <= n <= n_spk]
    if bad:
        raise DataError(where, None, f"speaker count {bad[0]} is outside {MIN_BOOT_SPEAKERS}..{n_spk} "
                        "(the set's test speakers)")
    rng = np.random.default_rng(seed)
    half = {}
    for n in sizes:
        reps = 1 if n == n_spk else subsets
        widths = {layer: [] for layer in layers}
        for _ in range(reps):
            keep = np.zeros(n_spk, dtype=bool)
            keep[rng.choice(n_spk, size=n, replace=False) if n < n_spk else np.arange(n_spk)] = True
            mask = keep[gi] & keep[ge]
            gid, counts = speaker_draws([names[i] for i in gi[mask]], num_samples, seed)
            t = target[mask]
            for layer in layers:
                ea = _eers_of_draws(xa[f"L{layer}"][mask], t, gid, counts)
                d = ea if xb is None else _eers_of_draws(xb[f"L{layer}"][mask], t, gid, counts) - ea
                lo, hi = _pct(d)
                widths[layer].append((hi - lo) / 2)
        for layer in layers:
            w = np.array(widths[layer])
            half[(layer, n)] = (float(w.mean()), float(w.std(ddof=1)) if len(w) > 1 else float("nan"), len(w))
    fit = [n for n in sizes if n >= 10]
    fit = fit if len(fit) >= 2 else sizes
    scale, exponent = {}, {}
    for layer in layers:
        pts = [(n, half[(layer, n)][0]) for n in fit if math.isfinite(half[(layer, n)][0])]
        ns = np.array([p[0] for p in pts], dtype=np.float64)
        hw = np.array([p[1] for p in pts])
        scale[layer] = float((hw / np.sqrt(ns)).sum() / (1.0 / ns).sum()) if len(pts) else float("nan")
        exponent[layer] = (float(np.polyfit(np.log(ns), np.log(np.maximum(hw, 1e-12)), 1)[0])
                           if len(pts) >= 2 and (hw > 0).all() else float("nan"))
    meta = {"dir_a": str(dir_a), "dir_b": str(dir_b) if dir_b else None, "trials": len(target),
            "target_trials": int(np.sum(target)), "subsets": subsets, "bootstrap_draws": num_samples,
            "seed": seed}
    return PowerResult(n_spk, sizes, layers, half, scale, exponent, fit, dir_b is not None, meta)


def power_tables(res: PowerResult, deltas=(1.0, 2.0, 5.0), extrapolate: int = 4) -> tuple[str, str, str]:
    """(markdown, power.tsv, power_needed.tsv) of an :func:`eer_power` result."""
    what = "Δ EER (B − A, paired: same trials, same speaker draws)" if res.paired else "EER"
    ext = [res.set_speakers * 2 ** k for k in range(1, extrapolate + 1)]
    m = res.meta
    title = (f"`{m['dir_b']}` − `{m['dir_a']}`" if res.paired else f"`{m['dir_a']}`")
    md = [f"# Speakers against the 95 % interval of the {what.split(' (')[0]}: {title}", "",
          f"Half-width (points) of the 95 % speaker-bootstrap interval ({m['bootstrap_draws']} draws) of the "
          f"{what}, per layer, on random subsets of n of the set's {res.set_speakers} test speakers (mean ± s.d. "
          f"over {m['subsets']} subsets; a subset keeps the trials whose enrolment and test speakers are both "
          f"in it); n = all: the set itself ({'the paired comparison' if res.paired else 'probe.tsv'}'s "
          "interval). Rows marked *extrapolated* lie beyond the set's speakers and are NOT measured: c/√n, "
          f"c fitted on n = {', '.join(map(str, res.fit_sizes))}; the fitted exponent of n is −0.5 where 1/√n "
          "holds. Same utterances per speaker and the same trial design assumed (a subset is exactly a "
          "smaller set's trial list where every non-target pair was kept, i.e. fewer than --num-nontarget; "
          "else it has proportionally fewer non-target trials).", "",
          "| speakers |" + "".join(f" L{layer} |" for layer in res.layers), "|---:|" + "---:|" * len(res.layers)]
    tsv = ["layer\tspeakers\tsource\tsubsets\thalf_width\thalf_width_sd"]
    for n in res.sizes:
        label = f"{n} (all)" if n == res.set_speakers else str(n)
        cells = []
        for layer in res.layers:
            mu, sd, k = res.half_width[(layer, n)]
            cells.append(fmt(mu, ".2f") + ("" if math.isnan(sd) else f" ± {sd:.2f}"))
            tsv.append(f"{layer}\t{n}\t{'all' if n == res.set_speakers else 'subsets'}\t{k}\t{fmt(mu, '.4f')}\t"
                       f"{fmt(sd, '.4f')}")
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    for n in ext:
        md.append(f"| {n} (extrapolated: c/√n) | "
                  + " | ".join(fmt(res.predicted(layer, n), ".2f") for layer in res.layers) + " |")
        tsv += [f"{layer}\t{n}\textrapolated\t0\t{fmt(res.predicted(layer, n), '.4f')}\tn/a" for layer in res.layers]
    md.append("| fitted exponent | " + " | ".join(fmt(res.exponent[layer], ".2f") for layer in res.layers) + " |")
    md += ["", f"Speakers needed for a given {what.split(' (')[0]}: `n1 / n2` = speakers for a half-width ≤ Δ "
           "(an observed difference of Δ then excludes 0: about 50 % power) / for 80 % power to find a true "
           f"difference of Δ (half-width ≤ Δ·{Z95:.2f}/{Z95 + Z80:.2f}), from c/√n; at least "
           f"{MIN_BOOT_SPEAKERS} (the speaker bootstrap is n/a below); n/a where the interval has no width."
           + ("" if res.paired else " A single system's interval: a paired Δ between two systems on the same "
              "trials is usually narrower (give two probe dirs), an unpaired one about √2 wider."), "",
           "| Δ (points) |" + "".join(f" L{layer} |" for layer in res.layers), "|---:|" + "---:|" * len(res.layers)]
    need = ["layer\tdelta\tspeakers_half_width_le_delta\tspeakers_80pct_power\tscale_c\texponent"]
    for d in deltas:
        md.append(f"| {d:g} | " + " | ".join(f"{fmt(res.needed(layer, d), '.0f')} / "
                                             f"{fmt(res.needed(layer, d, power=True), '.0f')}"
                                             for layer in res.layers) + " |")
        need += [f"{layer}\t{d:g}\t{fmt(res.needed(layer, d), '.0f')}\t{fmt(res.needed(layer, d, power=True), '.0f')}"
                 f"\t{fmt(res.scale[layer], '.4f')}\t{fmt(res.exponent[layer], '.4f')}" for layer in res.layers]
    return "\n".join(md) + "\n", "\n".join(tsv) + "\n", "\n".join(need) + "\n"


def fmt_ci(v: float, ci: tuple, spec: str = ".1f", sign: bool = False) -> str:
    """'62.5 [55.0, 70.0]' (n/a where undefined)."""
    s = "+" + spec if sign else spec
    if v is None or math.isnan(v):
        return NA
    if math.isnan(ci[0]):
        return f"{format(v, s)} [{NA}]"
    return f"{format(v, s)} [{format(ci[0], s)}, {format(ci[1], s)}]"


# ---------------------------------------------------------------------------------------------------
# plots


def plot_probe_curves(curves: dict, out_png, title: str = "Speaker probing per layer") -> None:
    """One line per system: {name: list[ProbeRow]}. Left: MLP accuracy (solid) and linear (dashed)
    with 95 % intervals; right: EER with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from matplotlib.lines import Line2D

    many = len(curves) > 4  # then one legend of the systems, right of the panels
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13 if many else 10, 4.0))
    for name, rows in curves.items():
        xs = np.array([r.layer for r in rows], dtype=float)
        mlp = np.array([r.mlp_acc for r in rows])
        line = ax.plot(xs, mlp, marker="o", label=f"{name} (MLP)")[0]
        c = line.get_color()
        lo, hi = np.array([r.mlp_ci[0] for r in rows]), np.array([r.mlp_ci[1] for r in rows])
        ax.fill_between(xs, lo, hi, color=c, alpha=0.15)
        ax.plot(xs, [r.linear_acc for r in rows], ls="--", marker=".", color=c, label=f"{name} (linear)")
        e = np.array([r.eer for r in rows])
        bx.plot(xs, e, marker="o", color=c, label=name)
        bx.fill_between(xs, [r.eer_ci[0] for r in rows], [r.eer_ci[1] for r in rows], color=c, alpha=0.15)
    first = next(iter(curves.values()))
    ax.axhline(first[0].chance, color="grey", lw=1, ls=":", label="chance")
    bx.axhline(50.0, color="grey", lw=1, ls=":", label="chance (50 %)")
    for a, yl, top in ((ax, "speaker identification accuracy %", 100), (bx, "speaker verification EER %", 55)):
        a.set_xlabel("layer (0 = input features)")
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.set_ylabel(yl)
        a.set_ylim(0, top)
        a.grid(alpha=0.3)
    # left: the line styles; the colours (systems) are named once, in the EER panel or beside it
    ax.legend(handles=[Line2D([], [], color="k", marker="o", label="MLP probe"),
                       Line2D([], [], color="k", ls="--", marker=".", label="linear probe"),
                       Line2D([], [], color="grey", ls=":", label="chance")], fontsize=7)
    if many:
        fig.legend(*bx.get_legend_handles_labels(), loc="center left", bbox_to_anchor=(0.78, 0.5), fontsize=7)
    else:
        bx.legend(fontsize=7)
    # a probe saturated on every layer is named in its panel: its curve ranks nothing
    for a, kinds in ((ax, ("linear", "mlp")), (bx, ("eer",))):
        notes = [(f"{name}: " if len(curves) > 1 else "") + saturation_short(saturation(rows), kinds)
                 for name, rows in curves.items() if saturation_short(saturation(rows), kinds)]
        if notes:
            a.text(0.02, 0.03, "saturated on every layer (ceiling: every 95 % CI reaches perfect;\n"
                   "chance: none lies clear of chance):\n" + "\n".join(notes), transform=a.transAxes,
                   fontsize=6.5, color="darkred", va="bottom", ha="left",
                   bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "darkred", "lw": 0.5})
    ax.set_title("identification (shaded: 95 % CI)", fontsize=9)
    bx.set_title("verification, cosine (shaded: 95 % CI)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.78, 1) if many else None)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
