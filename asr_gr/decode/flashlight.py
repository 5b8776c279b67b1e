"""Lexicon-constrained CTC beam search with a KenLM word n-gram: torchaudio's ``ctc_decoder``
(flashlight-text's wav2letter decoder, the paper's own framework; KenLM bundled).

The ARPA (or KenLM binary) is loaded by KenLM, not into Python. Hypotheses are words of the lexicon
only (``unk_score`` -inf: no out-of-lexicon words). Scores: acoustic natural-log posteriors +
``lm_weight`` x LM + ``word_score`` per word. KenLM scores in log10; we pass ``lm_weight * ln 10`` to
flashlight so that ``--lm-weight`` weighs natural-log LM probabilities here exactly as in the own prefix
beam search (``asr_gr.decode.beam``), and the two decoders' options mean the same.

Silence token (``sil_token``, optional between words): ``<space>`` for character token lists (the
word separator the CTC model emits); for sentencepiece lists, which have no separate separator token
(word starts are marked inside pieces), ``<unk>``, which the model never learnt to emit.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path

import torch

from asr_gr.utils import DataError

log = logging.getLogger(__name__)


def decoder_tokens(tokenizer) -> tuple[list[str], str]:
    """(token strings by id, silence token) of a character or sentencepiece tokenizer."""
    tokens = list(tokenizer.tokens)
    sil = "<space>" if "<space>" in tokens else "<unk>"
    if sil not in tokens:
        raise DataError("token list", None, "needs a <space> (characters) or <unk> (sentencepiece) token")
    return tokens, sil


class FlashlightDecoder:
    def __init__(self, tokenizer, lexicon=None, lm=None, *, beam_size: int = 20, lm_weight: float = 0.5,
                 word_score: float = 0.0, beam_threshold: float = 50.0, token_beam: int | None = None):
        from torchaudio.models.decoder import ctc_decoder

        from asr_gr.lm.lexicon import arpa_vocabulary, build_lexicon, write_lexicon

        if lexicon is None and lm is None:
            raise DataError("command line", None, "the flashlight decoder needs --lm and/or --lexicon")
        tokens, sil = decoder_tokens(tokenizer)
        self._tmp = None
        if lexicon is None:  # spell the LM's vocabulary in the model's tokens
            entries, skipped = build_lexicon(arpa_vocabulary(lm), tokenizer)
            if not entries:
                raise DataError(lm, None, "no word of the LM can be spelled in the model's tokens")
            if skipped:
                log.warning("%d of %d LM words have characters the token list lacks; left out (e.g. %s)",
                            len(skipped), len(skipped) + len(entries), skipped[0])
            self._tmp = tempfile.TemporaryDirectory(prefix="asr_gr_lexicon.")
            lexicon = Path(self._tmp.name) / "lexicon.txt"
            write_lexicon(entries, lexicon)
        for p in (lexicon, lm):
            if p is not None and not Path(p).is_file():
                raise DataError(p, None, "file does not exist")
        self.decoder = ctc_decoder(
            lexicon=str(lexicon), tokens=tokens, lm=str(lm) if lm else None, nbest=1, beam_size=beam_size,
            beam_size_token=token_beam, beam_threshold=beam_threshold, lm_weight=lm_weight * math.log(10),
            word_score=word_score, blank_token=tokens[0], sil_token=sil, unk_word="<unk>")

    def decode(self, log_probs: torch.Tensor, lens: torch.Tensor) -> list[str]:
        """Best word sequence of every utterance of a (B, T, V) batch of natural-log posteriors."""
        em = log_probs.detach().float().cpu().contiguous()
        hyps = self.decoder(em, lens.detach().cpu().to(torch.int32))
        return [" ".join(h[0].words) if h else "" for h in hyps]
