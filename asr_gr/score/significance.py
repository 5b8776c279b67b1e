"""Do two systems differ? Paired bootstrap of the WER difference, per utterance and per speaker.

Paired bootstrap (Bisani & Ney, ICASSP 2004; Kaldi's ``compute-wer-bootci``): draw the test set's
utterances with replacement ``B`` times, compute both systems' WER on each draw (errors summed over the
drawn utterances / reference words summed), and read the 95% confidence interval of the difference
``WER(B) - WER(A)`` off the percentiles of the ``B`` differences. The two-sided p-value is
``min(1, 2 * min(P(diff <= 0), P(diff >= 0)))`` over the draws (Bisani & Ney's "probability of
improvement" turned into a test). The speaker-level bootstrap draws whole speakers instead, which
respects that one speaker's utterances are not independent, and gives wider intervals. With fewer
than ``MIN_SPEAKERS`` speakers it is not computed (n/a): resampling one to four speakers gives a
degenerate interval (one speaker: every draw is the same) and a meaningless p-value.

Input: ``per_utt.json`` of ``asr_gr.bin.score`` (utt -> {spk, ref_words, errors, ...}).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_gr.utils import DataError

MIN_SPEAKERS = 5  # fewer speakers: the speaker-level bootstrap is n/a


@dataclass
class System:
    name: str
    utts: list  # sorted utterance ids
    spk: list  # speaker of each utterance
    ref: np.ndarray  # reference words per utterance
    err: np.ndarray  # word errors per utterance

    @property
    def wer(self) -> float:
        return 100.0 * self.err.sum() / max(1, self.ref.sum())

    def per_spk(self) -> dict:
        out = {}
        for s in sorted(set(self.spk)):
            m = np.array([x == s for x in self.spk])
            out[s] = (int(self.ref[m].sum()), self.err[m].sum().item())  # errors: float when seed-averaged
        return out


UNITS = {"word": ("ref_words", "errors"), "char": ("ref_chars", "char_errors")}


def system_from_per_utt(name: str, per_utt: dict, unit: str = "word") -> System:
    """A System of per_utt.json's word errors, or with ``unit="char"`` its character errors (CER)."""
    ref, err = UNITS[unit]
    utts = sorted(per_utt)
    return System(name, utts, [per_utt[u]["spk"] for u in utts],
                  np.array([per_utt[u][ref] for u in utts], dtype=np.int64),
                  np.array([per_utt[u][err] for u in utts], dtype=np.int64))


def subset(system: System, speakers) -> System:
    """The utterances of ``speakers`` only (e.g. the speakers of one accent); their order is kept."""
    keep = set(speakers)
    idx = [i for i, s in enumerate(system.spk) if s in keep]
    return System(system.name, [system.utts[i] for i in idx], [system.spk[i] for i in idx],
                  system.ref[idx], system.err[idx])


def load_system(score_dir, name: str | None = None, unit: str = "word") -> System:
    p = Path(score_dir) / "per_utt.json"
    if not p.exists():
        raise DataError(p, None, "per_utt.json does not exist (rerun stage 5 scoring)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return system_from_per_utt(name or Path(score_dir).name, data, unit)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(p, None, f"not a per_utt.json of asr_gr.bin.score: {e}") from None


@dataclass
class PairResult:
    a: str
    b: str
    wer_a: float
    wer_b: float
    delta: float  # WER(b) - WER(a), absolute %
    ci: tuple  # 95% CI of delta (utterance bootstrap)
    p: float  # two-sided p-value (utterance bootstrap)
    poi: float  # probability that b is better than a (delta < 0)
    ci_spk: tuple | None  # speaker-level bootstrap; None (n/a) with fewer than MIN_SPEAKERS speakers
    p_spk: float | None
    spk_delta: dict  # spk -> (wer_a, wer_b, delta)
    better: list  # speakers whose WER went down with b
    worse: list

    @property
    def num_speakers(self) -> int:
        return len(self.spk_delta)

    @property
    def significant(self) -> bool:
        """p < 0.05 in the utterance-level test and, where it is valid (>= MIN_SPEAKERS speakers), in
        the speaker-level one too: a difference carried by one speaker's utterances is not claimed."""
        return self.p < 0.05 and (self.p_spk is None or self.p_spk < 0.05)

    def spk_ci_text(self) -> str:
        if self.ci_spk is None:
            return f"n/a ({self.num_speakers} speaker{'s' if self.num_speakers != 1 else ''})"
        return f"[{self.ci_spk[0]:+.2f}, {self.ci_spk[1]:+.2f}]"


def _check_paired(a: System, b: System) -> None:
    if a.utts != b.utts:
        only = sorted(set(a.utts) ^ set(b.utts))
        raise DataError(f"{b.name}/per_utt.json", None,
                        f"systems '{a.name}' and '{b.name}' were scored on different utterances "
                        f"(e.g. '{only[0] if only else '?'}'); a paired test needs the same set")
    if a.spk != b.spk:
        raise DataError(f"{b.name}/per_utt.json", None,
                        f"systems '{a.name}' and '{b.name}' disagree on speakers of the same utterances")
    if a.ref.tolist() != b.ref.tolist():
        raise DataError(f"{b.name}/per_utt.json", None,
                        f"systems '{a.name}' and '{b.name}' have different reference word counts "
                        f"(different normalisation?)")


def seed_average(systems_per_seed: list[System], name: str) -> System:
    """One System whose per-utterance errors are the mean over the runs (seeds) of one system, scored on
    the same utterances; the paired tests then compare seed-averaged systems."""
    first = systems_per_seed[0]
    for other in systems_per_seed[1:]:
        _check_paired(first, other)
    err = sum(x.err.astype(float) for x in systems_per_seed) / len(systems_per_seed)
    return System(name, first.utts, first.spk, first.ref, err)


def wer_interval(system: System, num_samples: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """95 % bootstrap interval of one system's WER (utterances drawn with replacement)."""
    n = len(system.utts)
    if n == 0:
        raise DataError(f"{system.name}/per_utt.json", None, "no utterances scored")
    idx = np.random.default_rng(seed).integers(0, n, size=(num_samples, n))
    w = 100.0 * system.err[idx].sum(1) / np.maximum(system.ref[idx].sum(1), 1)
    lo, hi = np.percentile(w, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _boot(ref, err_a, err_b, idx) -> np.ndarray:
    """WER differences (b - a, %) of every bootstrap draw; ``idx`` (B, n) indices into the arrays."""
    n = ref[idx].sum(1)
    n = np.maximum(n, 1)
    return 100.0 * (err_b[idx].sum(1) - err_a[idx].sum(1)) / n


def _summ(d: np.ndarray, alpha: float) -> tuple[tuple, float, float]:
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    return (float(lo), float(hi)), p, float(np.mean(d < 0))


def paired_bootstrap(a: System, b: System, num_samples: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> PairResult:
    """Utterance- and speaker-level paired bootstrap of WER(b) - WER(a)."""
    _check_paired(a, b)
    rng = np.random.default_rng(seed)
    n = len(a.utts)
    if n == 0:
        raise DataError(f"{a.name}/per_utt.json", None, "no utterances to compare")
    d = _boot(a.ref, a.err, b.err, rng.integers(0, n, size=(num_samples, n)))
    ci, p, poi = _summ(d, alpha)
    # speaker level: per-speaker sums, then draw speakers
    sa, sb = a.per_spk(), b.per_spk()
    spks = sorted(sa)
    ref_s = np.array([sa[s][0] for s in spks])
    ea = np.array([sa[s][1] for s in spks])
    eb = np.array([sb[s][1] for s in spks])
    ci_spk, p_spk = None, None
    if len(spks) >= MIN_SPEAKERS:
        ds = _boot(ref_s, ea, eb, rng.integers(0, len(spks), size=(num_samples, len(spks))))
        ci_spk, p_spk, _ = _summ(ds, alpha)
    spk_delta = {}
    for s in spks:
        wa = 100.0 * sa[s][1] / max(1, sa[s][0])
        wb = 100.0 * sb[s][1] / max(1, sb[s][0])
        spk_delta[s] = (wa, wb, wb - wa)
    return PairResult(a.name, b.name, a.wer, b.wer, b.wer - a.wer, ci, p, poi, ci_spk, p_spk, spk_delta,
                      better=[s for s in spks if spk_delta[s][2] < 0],
                      worse=[s for s in spks if spk_delta[s][2] > 0])


def compare_systems(systems: list[System], num_samples: int = 1000, seed: int = 0) -> list[PairResult]:
    """Every pair (i < j) of ``systems``."""
    return [paired_bootstrap(systems[i], systems[j], num_samples, seed)
            for i in range(len(systems)) for j in range(i + 1, len(systems))]


def markdown(systems: list[System], pairs: list[PairResult], *, test_set: str, num_samples: int,
             extra: dict | None = None, qualifier: str = "") -> str:
    """``qualifier`` follows the set's name in the title, in brackets (e.g. the decoding setup)."""
    extra = extra or {}
    lines = [f"# Comparison of systems on `{test_set}`" + (f" ({qualifier})" if qualifier else ""), "",
             f"Paired bootstrap (Bisani & Ney 2004), {num_samples} draws of utterances (and, separately, of "
             f"speakers) with replacement; Δ = WER(B) − WER(A) in absolute %, 95% confidence interval; "
             f"p two-sided. The speaker-level bootstrap treats speakers as the sampled unit (one speaker's "
             f"utterances are not independent); with fewer than {MIN_SPEAKERS} speakers it is n/a. A difference "
             f"is significant when p < 0.05 in the utterance-level test and, where valid, in the "
             f"speaker-level one.", "",
             "| system | #Snt | #Spk | #Wrd | WER % | CER % |", "|---|---:|---:|---:|---:|---:|"]
    for s in systems:
        cer = extra.get(s.name, {}).get("cer")
        lines.append(f"| {s.name} | {len(s.utts)} | {len(set(s.spk))} | {int(s.ref.sum())} | {s.wer:.2f} | "
                     f"{cer:.2f} |" if cer is not None else
                     f"| {s.name} | {len(s.utts)} | {len(set(s.spk))} | {int(s.ref.sum())} | {s.wer:.2f} | - |")
    lines += ["", "## Pairs", "",
              "| A | B | WER A | WER B | Δ | 95% CI (utt) | p (utt) | P(B better) | 95% CI (spk) | p (spk) | "
              "significant | spk better / worse |",
              "|---|---|---:|---:|---:|---|---:|---:|---|---:|---|---|"]
    def fp(p):  # a p-value of 0 over B draws means p < 1/B
        if p is None:
            return "n/a"
        return f"< {1.0 / num_samples:.3g}" if p == 0 else f"{p:.3f}"

    for r in pairs:
        lines.append(f"| {r.a} | {r.b} | {r.wer_a:.2f} | {r.wer_b:.2f} | {r.delta:+.2f} | "
                     f"[{r.ci[0]:+.2f}, {r.ci[1]:+.2f}] | {fp(r.p)} | {r.poi:.3f} | "
                     f"{r.spk_ci_text()} | {fp(r.p_spk)} | "
                     f"{'yes' if r.significant else 'no'} | {len(r.better)} / {len(r.worse)} |")
    if systems:
        ref_sys = systems[0]
        lines += ["", f"## Per-speaker WER % (Δ against `{ref_sys.name}`)", "",
                  "| speaker | #Wrd | " + " | ".join(s.name for s in systems) + " | "
                  + " | ".join(f"Δ {s.name}" for s in systems[1:]) + " |",
                  "|---|---:|" + "---:|" * (len(systems) + len(systems) - 1)]
        per = [s.per_spk() for s in systems]
        for spk in sorted(per[0]):
            wers = [100.0 * p[spk][1] / max(1, p[spk][0]) for p in per]
            lines.append(f"| {spk} | {per[0][spk][0]} | " + " | ".join(f"{w:.2f}" for w in wers) + " | "
                         + " | ".join(f"{w - wers[0]:+.2f}" for w in wers[1:]) + (" |" if len(wers) > 1 else "|"))
        for r in pairs:
            lines += ["", f"`{r.b}` vs `{r.a}`: better for {', '.join(r.better) or 'no speaker'}; "
                          f"worse for {', '.join(r.worse) or 'no speaker'}."]
    return "\n".join(lines) + "\n"


def plot_per_spk(systems: list[System], path) -> None:
    """Grouped bars: per-speaker WER of every system side by side (PNG, matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asr_gr.utils import atomic_path

    per = [s.per_spk() for s in systems]
    spks = sorted(per[0]) if per else []
    x = np.arange(len(spks))
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(spks) * max(1, len(systems)) / 2 + 3), 4))
    for i, (s, p) in enumerate(zip(systems, per)):
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, [100.0 * p[k][1] / max(1, p[k][0]) for k in spks],
               width, label=f"{s.name} ({s.wer:.1f})")
    ax.set_xticks(x)
    ax.set_xticklabels(spks, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("WER %")
    ax.set_title("Per-speaker WER")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
