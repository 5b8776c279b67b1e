"""A word n-gram language model read from an ARPA file, scored with Katz-style backoff.

Scores are natural logs (ARPA stores log10). Unknown words get the ``<unk>`` probability when the
model has one, else ``unk_logprob``.
"""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

from asr_gr.utils import DataError

LN10 = math.log(10.0)


class ArpaLM:
    def __init__(self, probs: dict, backoffs: dict, order: int, unk_logprob: float = -10.0 * LN10):
        self.probs = probs  # tuple(words) -> ln p
        self.backoffs = backoffs  # tuple(words) -> ln backoff weight
        self.order = order
        self.unk = probs.get(("<unk>",), unk_logprob)

    @classmethod
    def from_file(cls, path) -> "ArpaLM":
        path = Path(path)
        if not path.exists():
            raise DataError(path, None, "ARPA file does not exist")
        opener = gzip.open if path.suffix == ".gz" else open
        probs, backoffs, counts = {}, {}, {}
        section = None
        with opener(path, "rt", encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                    continue
                if line == "\\end\\":
                    break
                m = re.fullmatch(r"\\(\d+)-grams:", line)
                if m:
                    section = int(m.group(1))
                    continue
                if section == "data":
                    m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
                    if not m:
                        raise DataError(path, i, f"bad line in \\data\\ section: {line!r}")
                    counts[int(m.group(1))] = int(m.group(2))
                elif isinstance(section, int):
                    parts = line.split()
                    n = section
                    if len(parts) not in (n + 1, n + 2):
                        raise DataError(path, i, f"a {n}-gram line needs log10 prob, {n} words and an "
                                                 f"optional backoff; got {line!r}")
                    try:
                        lp = float(parts[0])
                        bo = float(parts[n + 1]) if len(parts) == n + 2 else None
                    except ValueError:
                        raise DataError(path, i, f"bad number in {line!r}") from None
                    words = tuple(parts[1: n + 1])
                    probs[words] = lp * LN10
                    if bo is not None:
                        backoffs[words] = bo * LN10
                elif section is None:
                    continue  # header text before \data\
        if not counts or not probs:
            raise DataError(path, None, "not an ARPA file (no \\data\\ section or no n-grams)")
        return cls(probs, backoffs, max(counts))

    def score(self, context: tuple, word: str) -> float:
        """ln p(word | context) with backoff; ``context`` is the tuple of preceding words."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        bo = 0.0
        while True:
            p = self.probs.get(context + (word,))
            if p is not None:
                return bo + p
            if not context:
                return bo + self.unk
            bo += self.backoffs.get(context, 0.0)
            context = context[1:]

    def start(self) -> tuple:
        return ("<s>",)

    def advance(self, state: tuple, word: str) -> tuple[float, tuple]:
        """(ln p(word | state), new state)."""
        lp = self.score(state, word)
        return lp, (state + (word,))[-(max(1, self.order - 1)):]

    def sentence_logprob(self, words) -> float:
        state, total = self.start(), 0.0
        for w in list(words) + ["</s>"]:
            lp, state = self.advance(state, w)
            total += lp
        return total
