import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from asr_gr.decode.arpa import ArpaLM
from asr_gr.decode.beam import beam_search_batch, prefix_beam_search
from asr_gr.decode.ctc import greedy_decode


def _lp(rows):
    """(T, V) natural-log probabilities from rows of probabilities."""
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(1, keepdims=True))


def test_greedy_on_hand_made_log_probs():
    # frames: a a blank a b b blank -> "a a b" (blank 0, a 1, b 2)
    ids = [1, 1, 0, 1, 2, 2, 0]
    lp = torch.full((1, len(ids), 3), -5.0)
    for t, i in enumerate(ids):
        lp[0, t, i] = -0.01
    assert greedy_decode(lp, torch.tensor([7])) == [[1, 1, 2]]
    assert greedy_decode(lp, torch.tensor([3])) == [[1]]  # only the valid frames count


def test_beam_one_equals_greedy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal((12, 5)) * 20  # peaked frames: one path dominates
        lp = torch.log_softmax(torch.tensor(logits), -1)
        assert prefix_beam_search(lp, beam_size=1) == greedy_decode(lp[None], torch.tensor([12]))[0]
    lp = torch.log_softmax(torch.tensor(rng.standard_normal((3, 9, 5)) * 20), -1)
    lens = torch.tensor([9, 7, 4])
    assert beam_search_batch(lp, lens, beam_size=1) == greedy_decode(lp, lens)


def test_beam_sums_over_alignments_where_greedy_is_wrong():
    # 2 frames, blank 0, a 1. Best path: blank blank (0.36) -> "". But "a" has
    # a-a + a-blank + blank-a = 0.16 + 0.24 + 0.24 = 0.64 > 0.36.
    lp = _lp([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(torch.tensor(lp)[None], torch.tensor([2]))[0] == []
    assert prefix_beam_search(lp, beam_size=4) == [1]


ARPA = """\\data\\
ngram 1=5
ngram 2=2

\\1-grams:
-1.0 <s> -0.5
-1.0 </s>
-0.5 CAT -0.3
-3.0 CAT2
-5.0 <unk>

\\2-grams:
-0.1 <s> CAT
-0.2 CAT </s>

\\end\\
"""


def test_arpa_backoff(tmp_path):
    p = tmp_path / "lm.arpa"
    p.write_text(ARPA)
    lm = ArpaLM.from_file(p)
    ln10 = math.log(10)
    assert lm.order == 2
    assert lm.score(("<s>",), "CAT") == pytest.approx(-0.1 * ln10)
    assert lm.score(("<s>",), "CAT2") == pytest.approx((-0.5 - 3.0) * ln10)  # backoff(<s>) + p(CAT2)
    assert lm.score(("CAT",), "DOG") == pytest.approx((-0.3 - 5.0) * ln10)  # unknown word -> <unk>


def test_lm_moves_result_towards_in_vocabulary_word(tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA.replace("CAT2", "CAX"))
    lm = ArpaLM.from_file(tmp_path / "lm.arpa")
    tokens = ["<blank>", "<unk>", "<space>", "A", "C", "T", "K"]
    # acoustics: C A then T (0.45) vs K (0.55) -> "CAK" without the LM, "CAT" with it
    rows = [[0.01, 0, 0, 0.01, 0.97, 0.005, 0.005], [0.01, 0, 0, 0.97, 0.01, 0.005, 0.005],
            [0.0, 0, 0, 0, 0, 0.45, 0.55]]
    lp = _lp(np.asarray(rows) + 1e-6)
    no_lm = prefix_beam_search(lp, beam_size=4)
    assert [tokens[i] for i in no_lm] == ["C", "A", "K"]
    with_lm = prefix_beam_search(lp, beam_size=4, lm=lm, tokens=tokens, space_id=2, lm_weight=1.0)
    assert [tokens[i] for i in with_lm] == ["C", "A", "T"]


@pytest.fixture(scope="module")
def tiny_exp(tmp_path_factory):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from tiny_data import TINY_CONFIG, make_setup

    from asr_gr.models.asr_model import build_model
    from asr_gr.text.tokenizer import CharTokenizer

    root = tmp_path_factory.mktemp("dec")
    setup = make_setup(root)
    tok = CharTokenizer.from_file(setup["token_list"])
    cfg = dict(TINY_CONFIG, aux="none", aux_conf={}, encoder="conv_glu", token_list=str(setup["token_list"]),
               cmvn=str(setup["cmvn_path"]), input_dim=13, vocab_size=len(tok), num_speakers=3)
    torch.manual_seed(0)
    model = build_model(cfg, 13, len(tok), 3)
    exp = root / "exp"
    exp.mkdir()
    import yaml
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    (exp / "spk_list.txt").write_text("spk0\nspk1\nspk2\n")
    torch.save(model.state_dict(), exp / "best.pt")
    return exp, setup["valid_dir"], root


def test_nj2_equals_nj1_and_layer_dump(tiny_exp):
    import kaldiio

    from asr_gr.data.kaldi_dir import read_table
    from asr_gr.decode.runner import DecodeOptions, decode_dir

    exp, data, root = tiny_exp
    utts = list(read_table(data / "feats.scp"))
    r1 = decode_dir(exp, data, root / "d1", DecodeOptions(beam_size=3, dump_utts=utts[:2]), nj=1)
    ends = [utts[0], utts[-1]]  # one in each part of the split
    r2 = decode_dir(exp, data, root / "d2", DecodeOptions(beam_size=3, dump_utts=ends), nj=2)
    assert (root / "d1" / "hyp.txt").read_text() == (root / "d2" / "hyp.txt").read_text()
    assert set(r1["hyps"]) == set(r2["hyps"]) == set(utts)
    # the jobs are the parts of utils/split_data.sh --per-utt, complete data dirs of their own
    parts = [list(read_table(data / "split2utt" / str(j) / "feats.scp")) for j in (1, 2)]
    assert parts[0] + parts[1] == sorted(utts) and abs(len(parts[0]) - len(parts[1])) <= 1
    assert set(dict(kaldiio.load_scp(str(root / "d2" / "layers" / "layer1.scp")))) == set(ends)
    assert "RTF" in (root / "d2" / "rtf.txt").read_text()
    lay0 = dict(kaldiio.load_scp(str(root / "d1" / "layers" / "layer0.scp")))
    assert set(lay0) == set(utts[:2])
    feats = kaldiio.load_mat(read_table(data / "feats.scp")[utts[0]])
    assert lay0[utts[0]].shape == feats.shape  # layer 0 = the input features
    assert (root / "d1" / "layers" / "layer2.scp").exists()


def test_decode_cli_writes_hyp(tiny_exp):
    exp, data, root = tiny_exp
    (root / "list.txt").write_text("spk0-00\n")
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(exp), "--data-dir", str(data),
                        "--out-dir", str(root / "cli"), "--dump-layers", str(root / "list.txt")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (root / "cli" / "hyp.txt").exists() and (root / "cli" / "layers" / "layer0.scp").exists()


@pytest.fixture(scope="module")
def tiny_mtl_exp(tmp_path_factory):
    """A tiny exp dir whose model has a speaker head (random weights: decoding only needs a model)."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import yaml
    from tiny_data import TINY_CONFIG, make_setup

    from asr_gr.models.asr_model import build_model
    from asr_gr.text.tokenizer import CharTokenizer

    root = tmp_path_factory.mktemp("dec_mtl")
    setup = make_setup(root)
    tok = CharTokenizer.from_file(setup["token_list"])
    cfg = dict(TINY_CONFIG, aux="mtl", encoder="conv_glu", token_list=str(setup["token_list"]),
               cmvn=str(setup["cmvn_path"]), input_dim=13, vocab_size=len(tok), num_speakers=3)
    torch.manual_seed(0)
    model = build_model(cfg, 13, len(tok), 3)
    exp = root / "exp"
    exp.mkdir()
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    (exp / "spk_list.txt").write_text("spk0\nspk1\nspk2\n")
    torch.save(model.state_dict(), exp / "best.pt")
    return exp, [setup["valid_dir"], setup["train_dir"]], root


@pytest.mark.parametrize("how", [["--nj", "1"], ["--nj", "2"], ["--nj", "2", "--cmd", "utils/run.pl"]],
                         ids=["in-process", "workers", "backend-jobs"])
def test_one_call_decodes_every_set_and_setup_as_separate_calls_do(tiny_mtl_exp, how):
    """Stage 4's one process per system: every set and setup, the model loaded once and each set's
    forward pass shared, gives the hypotheses and speaker accuracies that one decode per set and
    setup gives."""
    import json
    from pathlib import Path

    from asr_gr.decode.runner import DecodeOptions, decode_dir
    from asr_gr.inference import load_trained

    exp, sets, root = tiny_mtl_exp
    beam = DecodeOptions(beam_size=3, decoder="prefix")
    system = load_trained(exp, "best.pt")
    want = {}
    for d in sets:
        for name, opts in (("greedy", DecodeOptions()), ("beam3", beam)):
            want[(d.name, name)] = decode_dir(exp, d, root / "sep" / f"{d.name}_{name}", opts)["hyps"]
        want[(d.name, "spk")] = system.speaker_report(system.dataset(d), 40000)
    assert want[(sets[0].name, "spk")] is not None
    out = root / ("one_" + "_".join(how).replace("/", "").replace("-", ""))
    cmd = [sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(exp), "--beam-size", "3", "--decoder", "prefix",
           *how]
    for d in sets:
        cmd += ["--task", str(d), str(out / f"{d.name}_beam3"), "--greedy-task", str(d), str(out / f"{d.name}_greedy")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert p.returncode == 0, p.stderr[-2000:]
    for d in sets:
        for name in ("greedy", "beam3"):
            got = dict(ln.split(" ", 1) if " " in ln else (ln, "")
                       for ln in (out / f"{d.name}_{name}" / "hyp.txt").read_text().splitlines())
            assert got == want[(d.name, name)], (d.name, name)
            setup = json.loads((out / f"{d.name}_{name}" / "decode_setup.json").read_text())
            assert setup["decoder"] == ("greedy" if name == "greedy" else "prefix")
            assert json.loads((out / f"{d.name}_{name}" / "spk_acc.json").read_text()) == want[(d.name, "spk")]
    assert "decoded" in p.stdout and p.stdout.count("into") == 4


def test_decode_refuses_two_tasks_into_one_out_dir(tiny_mtl_exp):
    exp, sets, root = tiny_mtl_exp
    o = str(root / "same")
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.decode", "--exp-dir", str(exp), "--task", str(sets[0]), o,
                        "--greedy-task", str(sets[1]), o], capture_output=True, text=True)
    assert p.returncode != 0 and "two decodes write the same out dir" in p.stderr
