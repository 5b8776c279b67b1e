"""WER/CER with jiwer, aggregated per utterance and per speaker, written as sclite-like reports."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jiwer

from asr_gr.utils import DataError, atomic_write_text


@dataclass
class Counts:
    snt: int = 0
    ref: int = 0  # reference words (or characters)
    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    snt_err: int = 0

    @property
    def err(self) -> int:
        return self.sub + self.dele + self.ins

    def rate(self, n: int) -> float:
        return 100.0 * n / self.ref if self.ref else 0.0

    def __iadd__(self, o: "Counts") -> "Counts":
        for k in ("snt", "ref", "corr", "sub", "dele", "ins", "snt_err"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        return self

    def as_dict(self) -> dict:
        return {"snt": self.snt, "ref": self.ref, "corr": self.corr, "sub": self.sub, "del": self.dele,
                "ins": self.ins, "err": self.err, "err_rate": round(self.rate(self.err), 2),
                "snt_err": self.snt_err}


def _counts(out, ref_len: int) -> Counts:
    c = Counts(snt=1, ref=ref_len, corr=out.hits, sub=out.substitutions, dele=out.deletions,
               ins=out.insertions)
    c.snt_err = int(c.err > 0)
    return c


def utterance_counts(ref: str, hyp: str, unit: str = "word") -> tuple[Counts, object | None]:
    """Error counts of one utterance. ``unit`` 'word' (WER) or 'char' (CER, spaces count as a char)."""
    ref, hyp = " ".join(ref.split()), " ".join(hyp.split())
    n = len(ref.split()) if unit == "word" else len(ref)
    if not hyp:
        return Counts(snt=1, ref=n, dele=n, snt_err=int(n > 0)), None
    out = jiwer.process_words(ref, hyp) if unit == "word" else jiwer.process_characters(ref, hyp)
    return _counts(out, n), out


def normalize(text: str, *, lowercase: bool = False, remove_punct: bool = False) -> str:
    """Text normalisation applied to references and hypotheses alike before scoring."""
    if lowercase:
        text = text.lower()
    if remove_punct:  # Unicode punctuation; apostrophes inside words (don't) are kept
        text = "".join(" " if unicodedata.category(ch).startswith("P") and ch != "'" else ch for ch in text)
        text = re.sub(r"(^|\s)'+|'+(\s|$)", " ", text)
    return " ".join(text.split())


@dataclass
class ScoreReport:
    total: dict = field(default_factory=dict)  # unit -> Counts
    per_spk: dict = field(default_factory=dict)  # unit -> {spk: Counts}
    per_utt: dict = field(default_factory=dict)  # utt -> (ref, hyp, Counts(word), alignment)
    utt_counts: dict = field(default_factory=dict)  # utt -> {unit: Counts}
    utt2spk: dict = field(default_factory=dict)
    normalization: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)  # reference utterances without a hypothesis


def score(refs: dict, hyps: dict, utt2spk: dict, *, lowercase: bool = False, remove_punct: bool = False,
          tokenize=None) -> ScoreReport:
    """Score every reference utterance; a missing hypothesis counts as empty (all deletions).

    Units: 'word' (WER), 'char' (CER) and, when ``tokenize`` (text -> list of token strings) is given,
    'token' (token error rate over the model's tokens)."""
    rep = ScoreReport(normalization={"lowercase": lowercase, "remove_punct": remove_punct})
    units = ("word", "char") + (("token",) if tokenize is not None else ())
    for unit in units:
        rep.total[unit] = Counts()
        rep.per_spk[unit] = {}
    rep.missing = sorted(set(refs) - set(hyps))
    for utt in sorted(refs):
        ref = normalize(refs[utt], lowercase=lowercase, remove_punct=remove_punct)
        hyp = normalize(hyps.get(utt, ""), lowercase=lowercase, remove_punct=remove_punct)
        spk = utt2spk[utt]
        rep.utt2spk[utt] = spk
        rep.utt_counts[utt] = {}
        for unit in units:
            if unit == "token":
                c, out = utterance_counts(" ".join(tokenize(ref)), " ".join(tokenize(hyp)), "word")
            else:
                c, out = utterance_counts(ref, hyp, unit)
            rep.total[unit] += c
            rep.per_spk[unit].setdefault(spk, Counts())
            rep.per_spk[unit][spk] += c
            rep.utt_counts[utt][unit] = c
            if unit == "word":
                rep.per_utt[utt] = (ref, hyp, c, out)
    return rep


def confusions(rep: ScoreReport) -> tuple[Counter, Counter, Counter]:
    """(substitutions {(ref, hyp): n}, deletions {ref: n}, insertions {hyp: n}) over the word alignments."""
    subs, dels, ins = Counter(), Counter(), Counter()
    for ref, hyp, _, out in rep.per_utt.values():
        r, h = ref.split(), hyp.split()
        if out is None:
            dels.update(r)
            continue
        for ch in out.alignments[0]:
            if ch.type == "substitute":
                subs.update(zip(r[ch.ref_start_idx: ch.ref_end_idx], h[ch.hyp_start_idx: ch.hyp_end_idx]))
            elif ch.type == "delete":
                dels.update(r[ch.ref_start_idx: ch.ref_end_idx])
            elif ch.type == "insert":
                ins.update(h[ch.hyp_start_idx: ch.hyp_end_idx])
    return subs, dels, ins


def confusions_text(rep: ScoreReport, top: int = 30) -> str:
    subs, dels, ins = confusions(rep)

    def block(title, items, fmt):
        lines = [f"{title} ({sum(n for _, n in items.items())} in all, top {top})", ""]
        lines += [f"{i:>4}: {n:>5}  ->  {fmt(k)}" for i, (k, n) in
                  enumerate(sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:top], 1)]
        return "\n".join(lines) + "\n"

    return (block("SUBSTITUTIONS (REF ==> HYP)", subs, lambda k: f"{k[0]} ==> {k[1]}") + "\n"
            + block("DELETIONS", dels, str) + "\n" + block("INSERTIONS", ins, str))


def _table(per_spk: dict, total: Counts, title: str) -> str:
    head = f"{'SPKR':<12}| {'# Snt':>5} {'# Wrd':>6} | {'Corr':>6} {'Sub':>6} {'Del':>6} {'Ins':>6} {'Err':>6} {'S.Err':>6}"
    if title == "CER":
        head = head.replace("# Wrd", "# Chr")
    rule = "-" * len(head)
    lines = [f",{'-' * (len(head) - 2)}.", f"| {title:^{len(head) - 4}} |", rule, head, rule]

    def row(name, c: Counts):
        pct = c.rate
        serr = 100.0 * c.snt_err / c.snt if c.snt else 0.0
        return (f"{name:<12}| {c.snt:>5} {c.ref:>6} | {pct(c.corr):>6.1f} {pct(c.sub):>6.1f} "
                f"{pct(c.dele):>6.1f} {pct(c.ins):>6.1f} {pct(c.err):>6.1f} {serr:>6.1f}")

    for spk in sorted(per_spk):
        lines.append(row(spk, per_spk[spk]))
    lines.append(rule)
    lines.append(row("Sum/Avg", total))
    errs = [c.rate(c.err) for c in per_spk.values()]
    if errs:
        lines.append(f"{'Mean':<12}|{'':>14}|{'':>28}{statistics.mean(errs):>6.1f}")
        lines.append(f"{'S.D.':<12}|{'':>14}|{'':>28}{(statistics.stdev(errs) if len(errs) > 1 else 0.0):>6.1f}")
        lines.append(f"{'Median':<12}|{'':>14}|{'':>28}{statistics.median(errs):>6.1f}")
    lines.append(f"`{'-' * (len(head) - 2)}'")
    return "\n".join(lines) + "\n"


def _alignment_lines(ref: str, hyp: str, out) -> tuple[str, str, str]:
    """sclite-style REF/HYP/Eval lines: correct words lower-case, errors upper-case, gaps ``***``."""
    r, h = ref.split(), hyp.split()
    if out is None:
        cols = [(w.upper(), "***", "D") for w in r]
    else:
        cols = []
        for ch in out.alignments[0]:
            if ch.type == "equal":
                cols += [(r[i].lower(), h[j].lower(), "") for i, j in zip(range(ch.ref_start_idx, ch.ref_end_idx),
                                                          range(ch.hyp_start_idx, ch.hyp_end_idx))]
            elif ch.type == "substitute":
                cols += [(r[i].upper(), h[j].upper(), "S") for i, j in zip(range(ch.ref_start_idx, ch.ref_end_idx),
                                                           range(ch.hyp_start_idx, ch.hyp_end_idx))]
            elif ch.type == "delete":
                cols += [(r[i].upper(), "***", "D") for i in range(ch.ref_start_idx, ch.ref_end_idx)]
            elif ch.type == "insert":
                cols += [("***", h[j].upper(), "I") for j in range(ch.hyp_start_idx, ch.hyp_end_idx)]
    widths = [max(len(a), len(b), len(e)) for a, b, e in cols]
    fmt = lambda k: " ".join(c[k].ljust(w) for c, w in zip(cols, widths)).rstrip()  # noqa: E731
    return fmt(0), fmt(1), fmt(2)


def reference_id(refs: dict) -> str:
    """A short fingerprint of the scored utterance list and its (normalised) references: systems may
    share a table only if theirs are equal."""
    h = hashlib.sha256()
    for utt in sorted(refs):
        h.update(f"{utt}\t{refs[utt]}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def missing_text(missing: list, total: int) -> str:
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (f"{len(missing)} of {total} reference utterances have no hypothesis ({shown}); they are "
            f"scored as deletions")


def check_comparable(results: dict, what: str) -> None:
    """``results``: {label: (result.json path, its dict)}. Raise DataError unless all were scored on the
    same utterance list against the same references (``ref_id``; older files: the utterance count)."""
    items = list(results.items())
    for label, (path, res) in items[1:]:
        label0, (path0, res0) = items[0]
        key = "ref_id" if "ref_id" in res and "ref_id" in res0 else "num_utts"
        if res.get(key) != res0.get(key):
            detail = (f"{res0.get('num_utts')} vs {res.get('num_utts')} utterances"
                      if res0.get("num_utts") != res.get("num_utts") else "the same number of utterances "
                      "but different utterances or references")
            raise DataError(path, None, f"cannot put '{label}' beside '{label0}' ({path0}) in {what}: they were "
                            f"scored on different utterance lists or references ({detail}); rescore both "
                            f"against the same reference dir (stage 5)")


def write_reports(rep: ScoreReport, out_dir, *, title: str = "") -> dict:
    """Write result.txt (summary + per-speaker WER and CER tables), per_spk.txt, per_utt.txt and
    result.json. Returns the summary dict."""
    out_dir = Path(out_dir)
    w, c = rep.total["word"], rep.total["char"]
    summary = {"wer": round(w.rate(w.err), 2), "cer": round(c.rate(c.err), 2), "word": w.as_dict(),
               "char": c.as_dict(), "num_utts": w.snt, "num_spk": len(rep.per_spk["word"]),
               "normalization": dict(rep.normalization), "missing_hyps": len(rep.missing),
               "ref_id": reference_id({u: v[0] for u, v in rep.per_utt.items()})}
    if "token" in rep.total:
        t = rep.total["token"]
        summary["ter"] = round(t.rate(t.err), 2)
        summary["token"] = t.as_dict()
    norm = rep.normalization or {}
    norm_line = ("normalisation: lowercase=" + ("yes" if norm.get("lowercase") else "no")
                 + " remove_punct=" + ("yes" if norm.get("remove_punct") else "no") + "\n")
    ter_line = ""
    if "token" in rep.total:
        t = rep.total["token"]
        ter_line = f"%TER {t.rate(t.err):.2f} [ {t.err} / {t.ref}, {t.ins} ins, {t.dele} del, {t.sub} sub ]\n"
    head = (f"{title}\n" if title else "") + norm_line + (
        f"%WER {w.rate(w.err):.2f} [ {w.err} / {w.ref}, {w.ins} ins, {w.dele} del, {w.sub} sub ]\n"
        f"%CER {c.rate(c.err):.2f} [ {c.err} / {c.ref}, {c.ins} ins, {c.dele} del, {c.sub} sub ]\n"
        + ter_line + f"%SER {100.0 * w.snt_err / max(1, w.snt):.2f} [ {w.snt_err} / {w.snt} ]\n"
        f"Scored {w.snt} sentences, {len(rep.per_spk['word'])} speakers\n"
        + (f"{missing_text(rep.missing, w.snt)}\n" if rep.missing else "") + "\n")
    wer_table = _table(rep.per_spk["word"], w, "WER")
    cer_table = _table(rep.per_spk["char"], c, "CER")
    atomic_write_text(out_dir / "result.txt", head + wer_table + "\n" + cer_table)
    atomic_write_text(out_dir / "per_spk.txt", wer_table + "\n" + cer_table)
    utt_lines = []
    for utt, (ref, hyp, cnt, out) in sorted(rep.per_utt.items()):
        r, h, e = _alignment_lines(ref, hyp, out)
        utt_lines.append(f"id: ({utt})\nScores: (#C #S #D #I) {cnt.corr} {cnt.sub} {cnt.dele} {cnt.ins}\n"
                         f"REF:  {r}\nHYP:  {h}\nEval: {e}\n")
    atomic_write_text(out_dir / "per_utt.txt", "\n".join(utt_lines))
    atomic_write_text(out_dir / "result.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out_dir / "confusions.txt", confusions_text(rep))
    per_utt = {}
    for utt in sorted(rep.per_utt):
        cw = rep.utt_counts[utt]["word"] if rep.utt_counts else rep.per_utt[utt][2]
        d = {"spk": rep.utt2spk.get(utt), "ref_words": cw.ref, "errors": cw.err, "corr": cw.corr,
             "sub": cw.sub, "del": cw.dele, "ins": cw.ins}
        if rep.utt_counts and "char" in rep.utt_counts[utt]:
            cc = rep.utt_counts[utt]["char"]
            d.update(ref_chars=cc.ref, char_errors=cc.err)
        if rep.utt_counts and "token" in rep.utt_counts[utt]:
            ct = rep.utt_counts[utt]["token"]
            d.update(ref_tokens=ct.ref, token_errors=ct.err)
        d["ref"], d["hyp"] = rep.per_utt[utt][0], rep.per_utt[utt][1]
        per_utt[utt] = d
    atomic_write_text(out_dir / "per_utt.json", json.dumps(per_utt, indent=1) + "\n")
    return summary
