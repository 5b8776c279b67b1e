"""CTC prefix beam search (Graves 2012; Hannun et al. 2014) with an optional word n-gram LM.

Role: the lexicon-free alternative to the flashlight decoder (``asr_gr.decode.flashlight``, torchaudio's
``ctc_decoder`` with KenLM), which decoding with ``--lm`` uses by default; this one is selected with
``--decoder prefix``, can produce words outside any lexicon, and is the reference the tests compare the
flashlight decoder with. It sums over alignments (blank / non-blank ending probabilities per prefix), so
it can find a label sequence whose total probability beats the best single path that greedy decoding
picks.

The LM (``asr_gr.decode.arpa.ArpaLM``) is applied at word boundaries: when ``<space>`` is emitted
after a non-empty word, and at the end of the utterance (last word + ``</s>``). Each scored word adds
``lm_weight * ln p(word | history) + word_bonus``. The LM needs a character token list with ``<space>``.
Utterances of a batch are decoded one after the other (``beam_search_batch``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

NEG_INF = -math.inf


def _lse(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


class _LMScorer:
    """Word-level LM state of prefixes: (lm score so far, LM state, chars of the open word)."""

    def __init__(self, lm, tokens: list[str], space_id: int, lm_weight: float, word_bonus: float):
        self.lm, self.tokens, self.space_id = lm, tokens, space_id
        self.w, self.bonus = lm_weight, word_bonus

    def initial(self):
        return (0.0, self.lm.start() if self.lm is not None else (), "")

    def extend(self, st, c: int):
        score, state, word = st
        if c == self.space_id:
            if not word:
                return st
            lp, state = self.lm.advance(state, word) if self.lm is not None else (0.0, state)
            return (score + self.w * lp + self.bonus, state, "")
        return (score, state, word + self.tokens[c])

    def final(self, st) -> float:
        score, state, word = st
        if word:
            lp, state = self.lm.advance(state, word) if self.lm is not None else (0.0, state)
            score += self.w * lp + self.bonus
        if self.lm is not None:
            score += self.w * self.lm.advance(state, "</s>")[0]
        return score


def prefix_beam_search(log_probs, beam_size: int = 8, blank: int = 0, *, lm=None, tokens=None,
                       space_id: int | None = None, lm_weight: float = 0.5, word_bonus: float = 0.0,
                       token_beam: int | None = None) -> list[int]:
    """Best label sequence of one utterance; ``log_probs`` (T, V) natural-log posteriors.

    ``token_beam``: per frame only the ``token_beam`` most likely tokens extend prefixes (default
    ``max(beam_size, 8)``). ``lm``/``tokens``/``space_id`` switch on word-level LM scoring.
    """
    lp = log_probs.detach().cpu().numpy() if isinstance(log_probs, torch.Tensor) else np.asarray(log_probs)
    T, V = lp.shape if lp.ndim == 2 else (0, 0)
    use_words = lm is not None or word_bonus != 0.0
    if use_words and (tokens is None or space_id is None):
        raise ValueError("LM scoring needs the token strings and the id of <space>")
    scorer = _LMScorer(lm, tokens, space_id, lm_weight, word_bonus) if use_words else None
    k = min(V, token_beam or max(beam_size, 8))
    # prefix -> [p_blank, p_nonblank]; aux: prefix -> LM state
    beams = {(): [0.0, NEG_INF]}
    aux = {(): scorer.initial() if scorer else None}

    def total(prefix, pb_pnb):
        s = _lse(*pb_pnb)
        return s + (aux[prefix][0] if scorer else 0.0)

    for t in range(T):
        row = lp[t]
        cands = np.argpartition(-row, k - 1)[:k] if k < V else np.arange(V)
        nxt: dict[tuple, list[float]] = {}

        def get(p):
            v = nxt.get(p)
            if v is None:
                v = nxt[p] = [NEG_INF, NEG_INF]
            return v

        for prefix, (pb, pnb) in beams.items():
            ptot = _lse(pb, pnb)
            e = get(prefix)
            e[0] = _lse(e[0], ptot + float(row[blank]))
            last = prefix[-1] if prefix else None
            for c in cands:
                c = int(c)
                if c == blank:
                    continue
                p = float(row[c])
                new = prefix + (c,)
                en = get(new)
                if c == last:
                    en[1] = _lse(en[1], pb + p)  # a repeat needs a blank in between
                    e[1] = _lse(e[1], pnb + p)  # collapses into the same prefix
                else:
                    en[1] = _lse(en[1], ptot + p)
                if scorer and new not in aux:
                    aux[new] = scorer.extend(aux[prefix], c)
        best = sorted(nxt.items(), key=lambda kv: total(kv[0], kv[1]), reverse=True)[:beam_size]
        beams = dict(best)
        aux = {p: aux[p] for p in beams} if scorer else aux
    if scorer:
        final = max(beams.items(), key=lambda kv: _lse(*kv[1]) + scorer.final(aux[kv[0]]))
    else:
        final = max(beams.items(), key=lambda kv: _lse(*kv[1]))
    return list(final[0])


def beam_search_batch(log_probs: torch.Tensor, lens: torch.Tensor, beam_size: int = 8, blank: int = 0,
                      **kw) -> list[list[int]]:
    """Prefix beam search of every utterance of a (B, T, V) batch (``lens`` valid frames each)."""
    lp = log_probs.detach().cpu().numpy()
    return [prefix_beam_search(lp[b, : int(lens[b])], beam_size, blank, **kw) for b in range(lp.shape[0])]
