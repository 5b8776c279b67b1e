"""Interpolated modified Kneser-Ney word n-grams (Chen & Goodman 1998), written as ARPA.

KenLM's estimator (``lmplz``) is not installable here as a binary (the ``kenlm`` pip package is the
query library only), so this is a small estimator with the same model definition as ``lmplz``:

- sentences are padded ``<s> w1 .. wk </s>``; ``<s>`` is never predicted;
- the highest order uses raw counts; a lower-order n-gram uses its *continuation count* (the number
  of distinct words seen before it), except n-grams starting with ``<s>``, which keep raw counts;
- three discounts per order, D1, D2, D3+, from that order's count-of-counts t1..t4:
  Y = t1/(t1+2 t2), D1 = 1-2Y t2/t1, D2 = 2-3Y t3/t2, D3+ = 3-4Y t4/t3 (when a count-of-count is
  zero or a discount leaves [0, k], the fallback 0.5, 1.0, 1.5 is used and logged, as lmplz's
  ``--discount_fallback``);
- p(w|h) = (a(hw) - D(a(hw)))/a(h.) + gamma(h) p(w|h'), gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.))/a(h.),
  and the unigrams interpolate with the uniform distribution over the vocabulary (every word, ``</s>``
  and ``<unk>``, which has no count of its own and gets only that uniform share).

In ARPA, every listed n-gram carries its interpolated probability and every context its gamma as the
backoff weight, which makes ARPA backoff reproduce the interpolated model exactly. Counts live in
Python dicts: fine for transcripts and texts of a few million words; estimate larger LMs with lmplz.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

from asr_gr.utils import DataError, atomic_path

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


def count_ngrams(sentences, order: int) -> list[dict]:
    """Raw counts: ``counts[n-1][ngram tuple]`` for n = 1..order over padded sentences (n-grams that
    end at ``<s>`` are not counted: ``<s>`` is only ever context)."""
    if order < 1:
        raise ValueError("order must be >= 1")
    counts = [defaultdict(int) for _ in range(order)]
    for words in sentences:
        seq = [BOS] + list(words) + [EOS]
        for i in range(1, len(seq)):
            for n in range(1, order + 1):
                if i - n + 1 < 0:
                    break
                counts[n - 1][tuple(seq[i - n + 1: i + 1])] += 1
    return [dict(c) for c in counts]


def adjusted_counts(counts: list[dict]) -> list[dict]:
    """Kneser-Ney counts: raw at the highest order and for n-grams starting with ``<s>``; elsewhere
    the number of distinct left extensions."""
    order = len(counts)
    adj = [None] * order
    adj[order - 1] = dict(counts[order - 1])
    for n in range(order - 1, 0, -1):  # n-grams of length n from (n+1)-grams
        cont = defaultdict(int)
        for g in counts[n]:
            cont[g[1:]] += 1
        a = {}
        for g, c in counts[n - 1].items():
            a[g] = c if g[0] == BOS else cont.get(g, 0)
        adj[n - 1] = {g: c for g, c in a.items() if c > 0}
    return adj


def discounts(adj_n: dict) -> tuple[tuple[float, float, float], bool]:
    """(D1, D2, D3+) from the count-of-counts of one order's adjusted counts; second value True when
    the fallback was used."""
    t = [0, 0, 0, 0, 0]
    for c in adj_n.values():
        if c <= 4:
            t[c] += 1
    try:
        y = t[1] / (t[1] + 2 * t[2])
        d = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    except ZeroDivisionError:
        return FALLBACK_DISCOUNTS, True
    if not all(0.0 < x <= k + 1 for k, x in enumerate(d)):  # D_k in (0, k]
        return FALLBACK_DISCOUNTS, True
    return d, False


class KneserNeyLM:
    """An estimated model: ``prob(context, word)`` (interpolated, natural probability), ARPA output."""

    def __init__(self, sentences, order: int = 3):
        self.order = order
        counts = count_ngrams(sentences, order)
        if not counts[0]:
            raise ValueError("no text to estimate an LM from")
        self.adj = adjusted_counts(counts)
        self.discounts, self.fallback = [], []
        for n in range(order):
            d, fb = discounts(self.adj[n])
            self.discounts.append(d)
            self.fallback.append(fb)
        # vocabulary: every predicted word + <unk> (never <s>)
        vocab = {g[0] for g in self.adj[0]}
        vocab.add(UNK)
        self.vocab = sorted(vocab)
        # per order: context -> [sum of adjusted counts, N1, N2, N3+]
        self.ctx = []
        for n in range(order):
            st = defaultdict(lambda: [0, 0, 0, 0])
            for g, c in self.adj[n].items():
                s = st[g[:-1]]
                s[0] += c
                s[min(c, 3)] += 1
            self.ctx.append(dict(st))
        self._cache: dict = {}

    def gamma(self, context: tuple) -> float:
        """Interpolation weight of the lower order after ``context`` (1.0 for an unseen context)."""
        n = len(context)
        st = self.ctx[n].get(tuple(context)) if n < self.order else None
        if st is None:
            return 1.0
        d = self.discounts[n]
        return (d[0] * st[1] + d[1] * st[2] + d[2] * st[3]) / st[0]

    def prob(self, context, word: str) -> float:
        """p(word | context), interpolated down to the uniform distribution over the vocabulary."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        key = context + (word,)
        p = self._cache.get(key)
        if p is not None:
            return p
        if context:
            lower = self.prob(context[1:], word)
        else:
            lower = 1.0 / len(self.vocab)
        n = len(context)
        st = self.ctx[n].get(context)
        if st is None:  # unseen context: all mass to the lower order
            p = lower
        else:
            a = self.adj[n].get(key, 0)
            d = self.discounts[n]
            u = max(a - d[min(a, 3) - 1], 0.0) / st[0] if a else 0.0
            p = u + self.gamma(context) * lower
        self._cache[key] = p
        return p

    def arpa_lines(self):
        grams = [sorted(set(self.adj[0]) | {(BOS,), (UNK,)})]
        grams += [sorted(self.adj[n]) for n in range(1, self.order)]
        yield "\\data\\"
        for n, g in enumerate(grams, 1):
            yield f"ngram {n}={len(g)}"
        for n in range(self.order):
            yield ""
            yield f"\\{n + 1}-grams:"
            for g in grams[n]:
                lp = -99.0 if g == (BOS,) else math.log10(self.prob(g[:-1], g[-1]))
                line = f"{lp:.7g}\t{' '.join(g)}"
                if n < self.order - 1 and g in self.ctx[n + 1]:
                    line += f"\t{math.log10(self.gamma(g)):.7g}"
                yield line
        yield ""
        yield "\\end\\"

    def write_arpa(self, path) -> None:
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for line in self.arpa_lines():
                f.write(line + "\n")


def read_sentences(path, kaldi_text: bool):
    """Word lists of a text file: a Kaldi ``text`` (the first field, the utterance id, dropped) or
    plain text, one sentence a line. Blank lines are skipped."""
    from asr_gr.utils import text_lines

    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, "text file does not exist")
    for lineno, line in text_lines(p):
        words = line.split()
        if kaldi_text:
            words = words[1:]
        for w in words:
            if w in (BOS, EOS):
                raise DataError(p, lineno, f"the text holds the reserved word {w!r}")
        if words:
            yield words
