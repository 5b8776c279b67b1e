"""The LM stage: modified Kneser-Ney estimation against hand-computed values, the ARPA it writes as
KenLM and the own ArpaLM read it, lexicons, and decoding with the flashlight (KenLM) decoder."""

import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from asr_gr.decode.arpa import ArpaLM
from asr_gr.decode.beam import prefix_beam_search
from asr_gr.lm.lexicon import arpa_vocabulary, build_lexicon, word_list
from asr_gr.lm.ngram import KneserNeyLM, adjusted_counts, count_ngrams, discounts
from asr_gr.text.tokenizer import CharTokenizer
from asr_gr.utils import DataError

TOY = [["a", "b"], ["a", "b"], ["b"]]


def test_toy_bigram_by_hand(tmp_path):
    # <s> a b </s> | <s> a b </s> | <s> b </s>
    # bigrams (raw: highest order): <s> a 2, a b 2, b </s> 3, <s> b 1 -> t1 1, t2 2, t3 1, t4 0:
    #   Y = 1/(1+2*2) = .2; D1 = 1 - 2*.2*2/1 = .2; D2 = 2 - 3*.2*1/2 = 1.7; D3+ = 3 - 4*.2*0/1 = 3.
    # unigrams (continuation counts): a 1 ({<s>}), b 2 ({<s>, a}), </s> 1 ({b}) -> t3 = 0: the
    #   fallback D1 .5, D2 1, D3+ 1.5. Vocabulary a b </s> <unk>: |V| = 4.
    lm = KneserNeyLM(TOY, order=2)
    assert lm.adj[0] == {("a",): 1, ("b",): 2, ("</s>",): 1}
    assert lm.adj[1] == {("<s>", "a"): 2, ("a", "b"): 2, ("b", "</s>"): 3, ("<s>", "b"): 1}
    assert lm.fallback == [True, False] and lm.discounts[0] == (0.5, 1.0, 1.5)
    assert lm.discounts[1] == pytest.approx((0.2, 1.7, 3.0))
    # unigrams: sum 4; gamma = (.5*2 + 1*1)/4 = .5; p = (a - D)/4 + .5/4
    assert lm.gamma(()) == pytest.approx(0.5)
    assert lm.prob((), "a") == pytest.approx(0.5 / 4 + 0.125)  # .25
    assert lm.prob((), "b") == pytest.approx(1.0 / 4 + 0.125)  # .375
    assert lm.prob((), "</s>") == pytest.approx(0.25)
    assert lm.prob((), "<unk>") == pytest.approx(0.125)  # the uniform share only
    # after <s>: a 2, b 1 (sum 3); gamma = (.2*1 + 1.7*1)/3
    g = 1.9 / 3
    assert lm.gamma(("<s>",)) == pytest.approx(g)
    assert lm.prob(("<s>",), "a") == pytest.approx((2 - 1.7) / 3 + g * 0.25)
    assert lm.prob(("<s>",), "b") == pytest.approx((1 - 0.2) / 3 + g * 0.375)
    assert lm.prob(("<s>",), "</s>") == pytest.approx(g * 0.25)
    assert lm.prob(("a",), "b") == pytest.approx((2 - 1.7) / 2 + 0.85 * 0.375)  # gamma(a) = 1.7/2
    assert lm.prob(("b",), "</s>") == pytest.approx(0.0 + 1.0 * 0.25)  # D3+ = 3 takes all of 3; gamma 1
    assert lm.prob(("b",), "a") == pytest.approx(0.25)
    # the ARPA: log10 of the same numbers, gamma as the backoff of every context
    lm.write_arpa(tmp_path / "toy.arpa")
    lines = (tmp_path / "toy.arpa").read_text().splitlines()
    assert lines[:3] == ["\\data\\", "ngram 1=5", "ngram 2=4"]
    assert f"{math.log10(0.25):.7g}\ta\t{math.log10(0.85):.7g}" in lines
    assert f"-99\t<s>\t{math.log10(g):.7g}" in lines
    assert f"{math.log10(0.125):.7g}\t<unk>" in lines
    assert f"{math.log10(0.15 + 0.85 * 0.375):.7g}\ta b" in lines


def test_discounts_from_count_of_counts():
    # t1 = 4, t2 = 2, t3 = 1, t4 = 1: Y = 4/(4+4) = .5; D1 = 1 - 2*.5*2/4 = .5; D2 = 2 - 3*.5*1/2 = 1.25;
    # D3+ = 3 - 4*.5*1/1 = 1
    adj = {("w%d" % i,): c for i, c in enumerate([1, 1, 1, 1, 2, 2, 3, 4, 7])}
    d, fb = discounts(adj)
    assert not fb and d == pytest.approx((0.5, 1.25, 1.0))
    assert discounts({("a",): 1, ("b",): 2})[1]  # t3 = 0: the fallback


def test_continuation_counts_of_lower_orders():
    counts = count_ngrams([["x", "a"], ["y", "a"], ["y", "a"], ["a"]], 3)
    adj = adjusted_counts(counts)
    assert counts[0][("a",)] == 4
    assert adj[0][("a",)] == 3  # distinct left words: x, y, <s>
    assert adj[1][("y", "a")] == 1  # left of "y a": only <s> (twice): one distinct word
    assert adj[1][("x", "a")] == 1 and ("a", "</s>") in adj[1]
    assert adj[1][("<s>", "y")] == 2  # starts with <s>: the raw count
    assert adj[2][("<s>", "y", "a")] == 2  # highest order: raw


def _sentences(seed=0, n=300):
    rng = random.Random(seed)
    vocab = list("abcdefg")
    return [[rng.choice(vocab[: rng.randint(2, 7)]) for _ in range(rng.randint(1, 8))] for _ in range(n)]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_estimated_lm_is_normalised_and_kenlm_reads_the_same_arpa(order, tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    sents = _sentences()
    lm = KneserNeyLM(sents, order)
    assert not any(lm.fallback[1:])  # enough text for the Chen-Goodman discounts above unigrams
    for ctx in [(), ("a",), ("<s>",), ("b", "c"), ("<s>", "a", "b"), ("q", "r")]:
        assert sum(lm.prob(ctx, w) for w in lm.vocab) == pytest.approx(1.0, abs=1e-9), ctx
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    own = ArpaLM.from_file(path)  # ARPA backoff reproduces the interpolated model
    for ctx in [(), ("a",), ("<s>",), ("g", "a", "a"), ("<s>", "a", "b")]:
        for w in lm.vocab:
            assert own.score(ctx, w) == pytest.approx(math.log(lm.prob(ctx, w)), abs=1e-5)
    words = Dictionary()
    for w in ["<unk>", "<s>", "</s>"] + list("abcdefg"):
        words.add_entry(w)
    ken = KenLM(str(path), words)
    for s in sents[:30] + [["a", "<unk>", "b"]]:
        state, total = ken.start(False), 0.0
        for w in s:
            state, sc = ken.score(state, words.get_index(w))
            total += sc
        total += ken.finish(state)[1]
        assert total == pytest.approx(own.sentence_logprob(s) / math.log(10), abs=1e-4)


def test_make_lm_cli_and_lexicon(tmp_path):
    (tmp_path / "text").write_text("u1 THE CAT SAT\nu2 THE DOG SAT\nu3 A CAT\n")
    (tmp_path / "extra.txt").write_text("THE DOG RAN\n\nA CAÑON\n")
    CharTokenizer(["<blank>", "<unk>", "<space>"] + sorted(set("THECATSDOGRAN"))).save(tmp_path / "tokens.txt")
    out = tmp_path / "lm"
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.make_lm", "--text", str(tmp_path / "text"),
                        "--extra-text", str(tmp_path / "extra.txt"), "--order", "3",
                        "--token-list", str(tmp_path / "tokens.txt"), "--out-dir", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "1 left out" in p.stdout and "CAÑON" in p.stdout  # Ñ is not a token: the word cannot be spelled
    vocab = arpa_vocabulary(out / "lm.arpa")
    assert sorted(vocab) == ["A", "CAT", "CAÑON", "DOG", "RAN", "SAT", "THE"]  # the extra text counts
    lex = (out / "lexicon.txt").read_text().splitlines()
    assert "CAT C A T" in lex and not any(ln.startswith("CAÑON") for ln in lex) and len(lex) == 6
    # an existing ARPA: only the lexicon, from a word list/lexicon's first field
    (tmp_path / "words.txt").write_text("DOG D AO G\nCAT K AE T\n")
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.make_lm", "--arpa", str(out / "lm.arpa"), "--words",
                        str(tmp_path / "words.txt"), "--token-list", str(tmp_path / "tokens.txt"), "--out-dir",
                        str(tmp_path / "lm2")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "lm2" / "lexicon.txt").read_text() == "DOG D O G\nCAT C A T\n"
    assert not (tmp_path / "lm2" / "lm.arpa").exists()


def test_make_lm_errors_name_the_file(tmp_path):
    from asr_gr.bin import make_lm

    CharTokenizer(["<blank>", "<unk>", "<space>", "A"]).save(tmp_path / "tokens.txt")
    (tmp_path / "text").write_text("u1 A A\nu2 A </s> A\n")
    base = ["--token-list", str(tmp_path / "tokens.txt"), "--out-dir", str(tmp_path / "lm")]
    for args, msg in [(["--text", str(tmp_path / "text")], "text:2: the text holds the reserved word '</s>'"),
                      (["--text", str(tmp_path / "nope")], "nope: text file does not exist"),
                      (["--text", str(tmp_path / "text"), "--order", "1"], "--order must be >= 2")]:
        with pytest.raises(SystemExit):
            make_lm.main(args + base)
    with pytest.raises(DataError, match="reserved word"):
        list(__import__("asr_gr.lm.ngram", fromlist=["x"]).read_sentences(tmp_path / "text", True))
    assert not (tmp_path / "lm").exists()  # nothing half-written


def test_sentencepiece_lexicon(tmp_path):
    from asr_gr.text.tokenizer import SentencePieceTokenizer, train_sentencepiece

    texts = ["the cat sat on the mat", "a dog ran to the cat", "the mat is red"] * 20
    model = train_sentencepiece(texts, tmp_path / "bpe", 30)
    tok = SentencePieceTokenizer(model)
    entries, skipped = build_lexicon(["cat", "mat", "zebra!"], tok)
    assert [w for w, _ in entries][:2] == ["cat", "mat"]
    for w, pieces in entries:
        assert pieces[0].startswith("\u2581") and "".join(pieces).replace("\u2581", "") == w
        assert tok.sp.decode(tok.sp.piece_to_id(pieces)) == w


def test_word_list_and_arpa_vocabulary(tmp_path):
    (tmp_path / "lex.txt").write_text("HELLO  HH AH L OW\nHELLO(2)  HH EH L OW\nHELLO  HH EH L OW\n<unk> SPN\n\nA AH\n")
    assert word_list(tmp_path / "lex.txt") == ["HELLO", "HELLO(2)", "A"]  # first field, first occurrence
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n")
    with pytest.raises(DataError, match=r"bad.arpa:5: a 1-gram line needs"):
        arpa_vocabulary(tmp_path / "bad.arpa")
    (tmp_path / "empty.txt").write_text("hello\n")
    with pytest.raises(DataError, match="no words"):
        arpa_vocabulary(tmp_path / "empty.txt")


# --- decoding -------------------------------------------------------------------------------------

TOKENS = ["<blank>", "<unk>", "<space>", "A", "C", "T", "K", "X"]


def _toy_decode_lm(tmp_path):
    lm = KneserNeyLM([["CAT"], ["CAT", "CAT"], ["CAX"]] * 3, order=2)
    lm.write_arpa(tmp_path / "lm.arpa")
    return tmp_path / "lm.arpa"


def _emissions(rows):
    p = np.asarray(rows, dtype=np.float64) + 1e-6
    return torch.tensor(np.log(p / p.sum(1, keepdims=True)), dtype=torch.float32)


def test_flashlight_decoder_lexicon_and_lm(tmp_path):
    from asr_gr.decode.flashlight import FlashlightDecoder

    arpa = _toy_decode_lm(tmp_path)
    tok = CharTokenizer(TOKENS)
    # C A then K (.55) vs T (.45): acoustically "CAK", not a word; the lexicon allows CAT and CAX only
    rows = [[0, 0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0.3, 0.4, 0.3]]
    em = _emissions(rows)[None]
    lens = torch.tensor([3])
    assert FlashlightDecoder(tok, lm=arpa, lm_weight=1.0).decode(em, lens) == ["CAT"]  # the LM prefers CAT
    assert prefix_beam_search(em[0], 8) == [4, 3, 6]  # lexicon-free, no LM: CAK
    # two words, with and without a <space> frame between them
    def frames(s):
        return [[1.0 if TOKENS[j] == (c if c != " " else "<space>") else 0.0 for j in range(len(TOKENS))] for c in s]
    em2 = _emissions(frames("CAT CAX"))[None]
    assert FlashlightDecoder(tok, lm=arpa, lm_weight=0.1).decode(em2, torch.tensor([7])) == ["CAT CAX"]
    # --lexicon given: its words only
    (tmp_path / "lex.txt").write_text("CAX C A X\n")
    assert FlashlightDecoder(tok, lexicon=tmp_path / "lex.txt", lm=arpa).decode(em, lens) == ["CAX"]


def test_flashlight_agrees_with_prefix_search_on_clear_words(tmp_path):
    """With every word in the lexicon and peaked posteriors, the lexicon-constrained KenLM search and
    the own lexicon-free prefix search (ArpaLM) find the same words."""
    from asr_gr.decode.flashlight import FlashlightDecoder

    arpa = _toy_decode_lm(tmp_path)
    tok = CharTokenizer(TOKENS)
    own = ArpaLM.from_file(arpa)
    fl = FlashlightDecoder(tok, lm=arpa, lm_weight=0.5, word_score=0.5, beam_size=16)
    rng = np.random.default_rng(0)
    for _ in range(10):
        words = [rng.choice(["CAT", "CAX"]) for _ in range(rng.integers(1, 4))]
        rows = []
        for c in " ".join(words):
            r = rng.uniform(0, 0.05, len(TOKENS))
            r[TOKENS.index(c if c != " " else "<space>")] = 1.0
            rows += [r, np.r_[1.0, rng.uniform(0, 0.05, len(TOKENS) - 1)]]  # the symbol, then a blank
        em = _emissions(rows)
        ids = prefix_beam_search(em, 16, lm=own, tokens=TOKENS, space_id=2, lm_weight=0.5, word_bonus=0.5)
        assert fl.decode(em[None], torch.tensor([len(rows)])) == [tok.decode(ids)] == [" ".join(words)]


def test_decode_cli_with_lm_and_both_decoders(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import yaml
    from tiny_data import TINY_CONFIG, make_setup

    from asr_gr.data.kaldi_dir import read_table
    from asr_gr.models.asr_model import build_model

    setup = make_setup(tmp_path)
    tok = CharTokenizer.from_file(setup["token_list"])
    cfg = dict(TINY_CONFIG, aux="none", aux_conf={}, encoder="conv_glu", token_list=str(setup["token_list"]),
               cmvn=str(setup["cmvn_path"]), input_dim=13, vocab_size=len(tok), num_speakers=3)
    torch.manual_seed(0)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    (exp / "spk_list.txt").write_text("spk0\nspk1\nspk2\n")
    torch.save(build_model(cfg, 13, len(tok), 3).state_dict(), exp / "best.pt")
    data = setup["valid_dir"]
    text = read_table(data / "text") if (data / "text").exists() else {}
    sents = [t.split() for t in text.values()] or [["A"]]
    lm = KneserNeyLM(sents, 2)
    lm.write_arpa(tmp_path / "lm.arpa")
    words = set(lm.vocab) - {"<unk>", "</s>"}
    outs = {}
    for dec in ("flashlight", "prefix"):
        p = subprocess.run([sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(exp), "--data-dir", str(data),
                            "--out-dir", str(tmp_path / dec), "--beam-size", "8", "--lm", str(tmp_path / "lm.arpa"),
                            "--lm-weight", "0.5", "--word-score", "1", "--decoder", dec, "--nj", "2"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        outs[dec] = read_table(tmp_path / dec / "hyp.txt", allow_empty_value=True)
        assert set(outs[dec]) == set(read_table(data / "feats.scp"))
        assert f'"decoder": "{dec}"' in (tmp_path / dec / "decode_setup.json").read_text()
    # lexicon-constrained: the flashlight hypotheses hold LM words only
    assert set(" ".join(outs["flashlight"].values()).split()) <= words
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(exp), "--data-dir", str(data),
                        "--out-dir", str(tmp_path / "bad"), "--lm", str(tmp_path / "nope.arpa")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "nope.arpa: file does not exist" in p.stderr
    assert not (tmp_path / "bad").exists()
