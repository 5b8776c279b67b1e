"""Decoding lexicons: each word spelled in the acoustic model's tokens (wav2letter/flashlight format,
``WORD t1 t2 ...`` a line).

Characters: the word's letters (the word separator ``<space>`` is the decoder's silence token between
words, not part of a spelling). Sentencepiece: the word's pieces as ``sp.encode`` segments it alone
(``▁`` + ...). A word with a character the token list lacks cannot be produced by the model and is left
out (counted and reported).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from asr_gr.utils import DataError, atomic_path

SPECIAL_WORDS = {"<s>", "</s>", "<unk>"}


def _open(path):
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, "file does not exist")
    return gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else open(p, encoding="utf-8")


def arpa_vocabulary(path) -> list[str]:
    """The words of an ARPA file's 1-gram section (``<s>``, ``</s>``, ``<unk>`` left out); reads no
    further than that section, so a multi-GB 4-gram costs seconds."""
    words, section = [], None
    with _open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("\\"):
                if section == 1:
                    break
                m = re.fullmatch(r"\\(\d+)-grams:", line)
                section = int(m.group(1)) if m else line
                continue
            if section == 1:
                parts = line.split()
                if len(parts) < 2:
                    raise DataError(path, i, f"a 1-gram line needs a log10 prob and a word; got {line!r}")
                if parts[1] not in SPECIAL_WORDS:
                    words.append(parts[1])
    if not words:
        raise DataError(path, None, "no words in the \\1-grams: section (is this an ARPA file?)")
    return words


def word_list(path) -> list[str]:
    """The first field of every line: a word list, or a lexicon such as librispeech-lexicon.txt
    (``WORD  PHONES...``) whose pronunciations are ignored; first occurrence kept."""
    seen = {}
    with _open(path) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] not in SPECIAL_WORDS:
                seen.setdefault(parts[0], None)
    if not seen:
        raise DataError(path, None, "no words")
    return list(seen)


def spell(word: str, tokenizer) -> list[str] | None:
    """``word`` in the tokenizer's tokens, or None when the model cannot produce it."""
    if hasattr(tokenizer, "sp"):  # sentencepiece
        pieces = tokenizer.sp.encode(word, out_type=str)
        ok = pieces and all(tokenizer.sp.piece_to_id(p) not in (0, tokenizer.sp.unk_id()) for p in pieces)
        return pieces if ok else None
    index = tokenizer.index
    chars = list(word)
    if not chars or any(c not in index for c in chars):
        return None
    return chars


def build_lexicon(words, tokenizer) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(entries, words left out)."""
    entries, skipped = [], []
    for w in words:
        s = spell(w, tokenizer)
        if s is None:
            skipped.append(w)
        else:
            entries.append((w, s))
    return entries, skipped


def write_lexicon(entries, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{w} {' '.join(s)}\n" for w, s in entries), encoding="utf-8")
