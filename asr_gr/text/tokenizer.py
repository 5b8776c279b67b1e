"""Character token lists (ESPnet style: ``<blank>`` first, ``<space>`` between words, ``<unk>``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from asr_gr.utils import DataError, atomic_write_text

BLANK, UNK, SPACE = "<blank>", "<unk>", "<space>"


def build_char_list(texts, min_count: int = 1) -> list[str]:
    """Token list for the characters of ``texts``: <blank>, <unk>, <space>, then chars in C order."""
    counts = Counter(ch for t in texts for ch in t if not ch.isspace())  # encode() maps whitespace to <space>
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
        except IsADirectoryError:
            raise DataError(path, None, "is a directory; give the token list file (e.g. char/tokens.txt)") from None
        except UnicodeDecodeError as e:
            raise DataError(path, None, f"not valid UTF-8 (byte {e.start}); is this a token list?") from None
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


class SentencePieceTokenizer:
    """BPE or unigram pieces from a sentencepiece model whose id 0 is the CTC blank (trained by
    :func:`train_sentencepiece` with ``<blank>`` as its pad piece and no bos/eos)."""

    def __init__(self, model_path):
        import sentencepiece as spm

        self.path = Path(model_path)
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        except (OSError, RuntimeError) as e:
            raise DataError(model_path, None, f"cannot load sentencepiece model: {e}") from None
        if self.sp.id_to_piece(0) != BLANK:
            raise DataError(model_path, None, f"piece 0 must be {BLANK} (train it with asr_gr.bin.tokenizer)")
        self.tokens = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(" ".join(text.split()), out_type=int)

    def decode(self, ids) -> str:
        return " ".join(self.sp.decode([int(i) for i in ids if int(i) != 0]).split())


def train_sentencepiece(texts, out_prefix, vocab_size: int, model_type: str = "bpe") -> Path:
    """Train a sentencepiece model on ``texts``; id 0 is <blank>, 1 is <unk>. Returns the .model path."""
    import sentencepiece as spm

    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)), model_prefix=str(out_prefix), vocab_size=vocab_size,
        model_type=model_type, character_coverage=1.0, pad_id=0, pad_piece=BLANK, unk_id=1,
        unk_piece=UNK, bos_id=-1, eos_id=-1, input_sentence_size=10_000_000, shuffle_input_sentence=True,
        hard_vocab_limit=False, minloglevel=2)
    return out_prefix.with_suffix(".model")


def load_tokenizer(path):
    """A sentencepiece model (``*.model``) or a character token list (``tokens.txt``)."""
    return SentencePieceTokenizer(path) if str(path).endswith(".model") else CharTokenizer.from_file(path)
