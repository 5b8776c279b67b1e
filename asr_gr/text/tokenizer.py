"""Character token lists (ESPnet style: ``<blank>`` first, ``<space>`` between words, ``<unk>``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from asr_gr.utils import DataError, atomic_write_text

BLANK, UNK, SPACE = "<blank>", "<unk>", "<space>"


def build_char_list(texts, min_count: int = 1) -> list[str]:
    """Token list for the characters of ``texts``: <blank>, <unk>, <space>, then chars in C order."""
    counts = Counter(ch for t in texts for ch in t if ch != " ")
    chars = sorted(c for c, n in counts.items() if n >= min_count)
    return [BLANK, UNK, SPACE] + chars


class CharTokenizer:
    def __init__(self, tokens: list[str]):
        if not tokens or tokens[0] != BLANK:
            raise ValueError(f"token list must start with {BLANK}")
        self.tokens = tokens
        self.index = {t: i for i, t in enumerate(tokens)}
        if len(self.index) != len(tokens):
            raise ValueError("token list has duplicates")
        self.unk = self.index.get(UNK, 0)

    @classmethod
    def from_file(cls, path) -> "CharTokenizer":
        path = Path(path)
        try:
            tokens = [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines()]
        except FileNotFoundError:
            raise DataError(path, None, "token list does not exist (run stage 2)") from None
        for i, t in enumerate(tokens, 1):
            if not t or " " in t:
                raise DataError(path, i, f"bad token {t!r}: tokens are non-empty and have no spaces")
        return cls(tokens)

    def save(self, path) -> None:
        atomic_write_text(path, "".join(t + "\n" for t in self.tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [self.index[SPACE] if ch == " " else self.index.get(ch, self.unk)
                for ch in " ".join(text.split())]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            t = self.tokens[int(i)]
            if t == BLANK:
                continue
            out.append(" " if t == SPACE else t)
        return " ".join("".join(out).split())
