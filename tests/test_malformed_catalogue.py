"""A catalogue of malformed inputs. Each one must stop the tool with one clear error line naming the
file (and line, where there is one) or the config key, and the reason, and leave no partial output."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_gr.bin import compute_fbank, decode, grid, train, validate_data_dir
from tiny_data import TINY_CONFIG, make_dump, make_setup

SR = 16000


def _wav(path, n=SR // 2, sr=SR, channels=1, seed=0):
    x = 0.1 * np.random.default_rng(seed).standard_normal((n, channels)).astype(np.float32)
    sf.write(path, x if channels > 1 else x[:, 0], sr)
    return path


def _data_dir(root: Path) -> Path:
    d = root / "data"
    d.mkdir(parents=True)
    utts = ["a-1", "a-2", "b-1"]
    for i, u in enumerate(utts):
        _wav(root / f"{u}.wav", seed=i)
    (d / "wav.scp").write_text("".join(f"{u} {root / (u + '.wav')}\n" for u in utts))
    (d / "text").write_text("a-1 HELLO\na-2 HELLO THERE\nb-1 YES\n")
    (d / "utt2spk").write_text("a-1 a\na-2 a\nb-1 b\n")
    (d / "spk2utt").write_text("a a-1 a-2\nb b-1\n")
    return d


def _replace_line(path: Path, lineno: int, new: str):
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = new
    path.write_text("".join(lines))


# (id, how to break the data dir, expected error regex). The fbank stage validates, then reads audio.
DATA_CASES = [
    ("unsorted-keys", lambda d, r: (d / "wav.scp").write_text(
        "".join(reversed((d / "wav.scp").read_text().splitlines(keepends=True)))),
     r"wav\.scp:2: not sorted in C order"),
    ("duplicate-key", lambda d, r: (d / "text").write_text("a-1 HELLO\na-1 HI\nb-1 YES\n"),
     r"text:2: duplicate key 'a-1'"),
    ("utt-missing-in-utt2spk", lambda d, r: ((d / "utt2spk").write_text("a-1 a\nb-1 b\n"),
                                             (d / "spk2utt").write_text("a a-1\nb b-1\n")),
     r"wav\.scp:2: utterance 'a-2' is not in utt2spk"),
    ("utt-missing-in-text", lambda d, r: (d / "text").write_text("a-1 HELLO\nb-1 YES\n"),
     r"text: utterance 'a-2' \(in utt2spk\) is missing here"),
    ("empty-transcript", lambda d, r: _replace_line(d / "text", 2, "a-2\n"), r"text:2: key 'a-2' has no value"),
    ("whitespace-transcript", lambda d, r: _replace_line(d / "text", 2, "a-2    \n"),
     r"text:2: key 'a-2' has no value"),
    ("non-utf8-text", lambda d, r: (d / "text").write_bytes(b"a-1 HELLO\na-2 CAF\xe9\nb-1 YES\n"),
     r"text:2: not valid UTF-8"),
    ("spk2utt-mismatch", lambda d, r: (d / "spk2utt").write_text("a a-1\nb a-2 b-1\n"),
     r"spk2utt: does not match utt2spk"),
    ("blank-line", lambda d, r: _replace_line(d / "utt2spk", 2, "\n"), r"utt2spk:2: empty line"),
    ("speaker-two-tokens", lambda d, r: _replace_line(d / "utt2spk", 2, "a-2 a x\n"),
     r"utt2spk:2: speaker must be one token"),
    ("bad-gender", lambda d, r: (d / "spk2gender").write_text("a f\nb x\n"),
     r"spk2gender:2: gender must be 'm' or 'f'"),
    ("missing-audio", lambda d, r: (r / "a-2.wav").unlink(), r"wav\.scp:2: audio file .* does not exist"),
    ("empty-audio-file", lambda d, r: (r / "a-2.wav").write_bytes(b""), r"wav\.scp:2: .* is empty \(0 bytes\)"),
    ("zero-length-audio", lambda d, r: sf.write(r / "a-2.wav", np.zeros(0, np.float32), SR),
     r"wav\.scp:2: .* has no samples"),
    ("truncated-audio", lambda d, r: (r / "a-2.wav").write_bytes((r / "a-2.wav").read_bytes()[:30]),
     r"wav\.scp:2: (cannot read audio file|.*has no samples)"),
    ("not-audio", lambda d, r: (r / "a-2.wav").write_text("hello, I am a text file, not a RIFF WAV\n" * 20),
     r"wav\.scp:2: cannot read audio file"),
    ("wrong-sample-rate", lambda d, r: _wav(r / "a-2.wav", sr=8000), r"wav\.scp:2: .* is 8000 Hz; expected 16000"),
    ("multichannel", lambda d, r: _wav(r / "a-2.wav", channels=2), r"wav\.scp:2: .* has 2 channels; expected mono"),
    ("failing-pipe", lambda d, r: _replace_line(d / "wav.scp", 2, "a-2 false |\n"),
     r"wav\.scp:2: .*'false'.* failed"),
    ("segment-outside-recording", lambda d, r: (
        (d / "wav.scp").write_text(f"rec {r / 'a-1.wav'}\n"),
        (d / "segments").write_text("a-1 rec 0.0 0.2\na-2 rec 0.2 9.0\nb-1 rec 0.3 0.4\n")),
     r"segments:2: segment of .a-2. ends at 9 s, after the end of recording"),
    ("segment-unknown-recording", lambda d, r: (
        (d / "wav.scp").write_text(f"rec {r / 'a-1.wav'}\n"),
        (d / "segments").write_text("a-1 rec 0.0 0.2\na-2 nope 0.2 0.3\nb-1 rec 0.3 0.4\n")),
     r"segments:2: .*'nope'"),
]


@pytest.mark.parametrize("case, breaker, pattern", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_data_dir_catalogue(tmp_path, capsys, case, breaker, pattern):
    d = _data_dir(tmp_path)
    breaker(d, tmp_path)
    out = tmp_path / "dump"
    with pytest.raises(SystemExit) as e:
        compute_fbank.main(["--data-dir", str(d), "--out-dir", str(out)])
    assert e.value.code == 1
    errors = [ln[ln.index("ERROR"):] for ln in capsys.readouterr().err.splitlines() if "ERROR" in ln]
    assert errors and any(re.search(pattern, ln) for ln in errors), errors
    assert all(ln.count("\n") == 0 for ln in errors)
    leftovers = [p.name for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [n for n in leftovers if n in ("feats.scp", "feats.ark") or n.startswith(".")], leftovers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained exp dir and its data, for the training/decoding cases."""
    root = tmp_path_factory.mktemp("trained")
    paths = make_setup(root / "data")
    args = ["--exp-dir", str(root / "exp"), "--no-progress", "--train-dir", str(paths["train_dir"]),
            "--valid-dir", str(paths["valid_dir"]), "--token-list", str(paths["token_list"]),
            "--cmvn", str(paths["cmvn_path"])]
    sets = [f"{k}={v}" for k, v in TINY_CONFIG.items() if not isinstance(v, dict)]
    sets += [f"{k}.{kk}={vv}" for k, v in TINY_CONFIG.items() if isinstance(v, dict) for kk, vv in v.items()]
    train.main(args + [x for s in sets for x in ("--set", s)] + ["--set", "max_epochs=1"])
    return root, paths, args


def _fails(capsys, main, argv, pattern):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code != 0
    err = capsys.readouterr().err
    errors = [ln[ln.index("ERROR"):] for ln in err.splitlines() if "ERROR" in ln] or err.strip().splitlines()[-1:]
    assert any(re.search(pattern, ln) for ln in errors), err[-2000:]


def _copy_set(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_feats_scp_past_the_end_of_its_ark(trained, tmp_path, capsys):
    root, paths, _ = trained
    d = _copy_set(paths["valid_dir"], tmp_path / "dev")
    ark = (d / "feats.scp").read_text().splitlines()[1].split()[1].rsplit(":", 1)[0]
    _replace_line(d / "feats.scp", 2, f"spk0-01 {ark}:99999999\n")
    _fails(capsys, decode.main, ["--exp-dir", str(root / "exp"), "--data-dir", str(d), "--out-dir",
                                 str(tmp_path / "out")], r"feats\.scp:2: cannot read features of 'spk0-01'")
    assert not (tmp_path / "out" / "hyp.txt").exists()


def test_feature_dimension_differs_from_the_model(trained, tmp_path, capsys):
    import kaldiio

    root, paths, _ = trained
    d = _copy_set(paths["valid_dir"], tmp_path / "dev")
    mats = dict(kaldiio.load_scp(str(d / "feats.scp")))
    with kaldiio.WriteHelper(f"ark,scp:{d / 'f40.ark'},{d / 'feats.scp'}") as w:
        for k, m in mats.items():
            w(k, np.zeros((m.shape[0], 40), np.float32))
    _fails(capsys, decode.main, ["--exp-dir", str(root / "exp"), "--data-dir", str(d), "--out-dir",
                                 str(tmp_path / "out")],
           r"feats\.scp:\d+: features of .* have dimension 40; the model expects 13")


def test_unknown_speaker_in_the_heldout_set(trained, tmp_path, capsys):
    root, paths, args = trained
    d = make_dump(tmp_path, "held", n_spk=1, utts_per_spk=2, prefix="zz")
    args = [a if a != str(root / "exp") else str(tmp_path / "exp") for a in args]
    _fails(capsys, train.main, args + ["--heldout-dir", str(d), "--aux", "adversarial", "--set", "max_epochs=1"],
           r"utt2spk:1: speaker 'zz0' of 'zz0-00' was not seen in training")


@pytest.mark.parametrize("yaml_text, pattern", [
    ("lr: 0.1\nlearnin_rate: 3\n", r"c\.yaml: unknown key 'learnin_rate'"),
    ("max_epochs: three\n", r"c\.yaml: key 'max_epochs' must be an integer"),
    ("encoder: lstm\n", r"unknown encoder 'lstm'; known: blstm, conformer, conv_glu"),
    ("aux: adverserial\n", r"unknown aux 'adverserial'; known: none, adversarial, mtl"),
    ("encoder_conf: {channelz: [8]}\n", r"encoder 'conv_glu': .*unexpected keyword argument 'channelz'"),
    ("lr: [0.1\n", r"c\.yaml:\d+: invalid YAML"),
])
def test_config_catalogue(trained, tmp_path, capsys, yaml_text, pattern):
    root, paths, args = trained
    (tmp_path / "c.yaml").write_text(yaml_text)
    args = [a if a != str(root / "exp") else str(tmp_path / "exp") for a in args]
    _fails(capsys, train.main, args + ["--config", str(tmp_path / "c.yaml")], pattern)
    assert not (tmp_path / "exp" / "checkpoint.pt").exists()


def test_truncated_checkpoint_for_decoding(trained, tmp_path, capsys):
    root, paths, _ = trained
    exp = tmp_path / "exp"
    shutil.copytree(root / "exp", exp)
    (exp / "best.pt").write_bytes((exp / "best.pt").read_bytes()[:200])
    _fails(capsys, decode.main, ["--exp-dir", str(exp), "--data-dir", str(paths["valid_dir"]), "--out-dir",
                                 str(tmp_path / "out")], r"best\.pt: cannot load checkpoint")


def test_bad_token_list(tmp_path, capsys, trained):
    root, paths, args = trained
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\nA B\n")
    args = [a if a != str(paths["token_list"]) else str(tmp_path / "tokens.txt") for a in args]
    args = [a if a != str(root / "exp") else str(tmp_path / "exp") for a in args]
    _fails(capsys, train.main, args, r"tokens\.txt:3: bad token 'A B'")


def test_token_list_is_a_directory(tmp_path, capsys, trained):
    root, paths, args = trained
    args = [a if a != str(paths["token_list"]) else str(tmp_path) for a in args]
    args = [a if a != str(root / "exp") else str(tmp_path / "exp") for a in args]
    _fails(capsys, train.main, args, r": is a directory; give the token list file")


def test_bad_grid_file(tmp_path, capsys):
    (tmp_path / "g.yaml").write_text("systems:\n  - {aux: mtl, spk_layr: 2}\n")
    _fails(capsys, grid.main, ["--grid", str(tmp_path / "g.yaml"), "--dry-run", "--", "./asr.sh"],
           r"g\.yaml: system 1: unknown key 'spk_layr'")


def test_validator_cli_lists_every_problem(tmp_path, capsys):
    d = _data_dir(tmp_path)
    (d / "text").write_text("a-1 HELLO\nb-1 YES\nc-9 EXTRA\n")
    with pytest.raises(SystemExit):
        validate_data_dir.main([str(d)])
    err = capsys.readouterr().err.splitlines()
    assert any("text: utterance 'a-2' (in utt2spk) is missing here" in e for e in err)
    assert any("text:3: utterance 'c-9' is not in utt2spk" in e for e in err)


# ---- issue 12: failures that used to pass silently -------------------------------------------------

def _bom(path: Path):
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


DATA_CASES_2 = [
    ("bom-utt2spk", lambda d, r: _bom(d / "utt2spk"), r"utt2spk:1: starts with a UTF-8 byte-order mark"),
    ("bom-text", lambda d, r: _bom(d / "text"), r"text:1: starts with a UTF-8 byte-order mark"),
    ("bom-wav-scp", lambda d, r: _bom(d / "wav.scp"), r"wav\.scp:1: starts with a UTF-8 byte-order mark"),
]


@pytest.mark.parametrize("case, breaker, pattern", DATA_CASES_2, ids=[c[0] for c in DATA_CASES_2])
def test_bom_is_named_once(tmp_path, capsys, case, breaker, pattern):
    """A BOM used to glue itself to the first key: three contradictory messages. Now one, naming it."""
    d = _data_dir(tmp_path)
    breaker(d, tmp_path)
    with pytest.raises(SystemExit):
        compute_fbank.main(["--data-dir", str(d), "--out-dir", str(tmp_path / "dump")])
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "ERROR" in ln]
    assert len(errors) == 1 and re.search(pattern, errors[0]), errors
    assert not (tmp_path / "dump").exists()


def test_tab_inside_a_transcript_is_a_word_boundary(tmp_path):
    """A TAB used to become a token that encode() never produces; now whitespace is normalised."""
    from asr_gr.data.dataset import FeatureDataset
    from asr_gr.text.tokenizer import CharTokenizer, build_char_list
    from asr_gr.data.kaldi_dir import read_text_file

    d = make_dump(tmp_path, "set", n_spk=1, utts_per_spk=2)
    first = (d / "text").read_text().splitlines()[0].split(maxsplit=1)
    (d / "text").write_text(f"{first[0]} GO\tLEFT  UP\n" + "".join(
        ln + "\n" for ln in (d / "text").read_text().splitlines()[1:]))
    texts = read_text_file(d / "text")
    assert texts[first[0]] == "GO LEFT UP"
    tok = CharTokenizer(build_char_list(texts.values()))
    assert not [t for t in tok.tokens if t.isspace() or "\t" in t]
    ds = FeatureDataset(d, encode=tok.encode)
    assert tok.decode(ds.targets[first[0]]) == "GO LEFT UP"


def _tiny_sets() -> list[str]:
    sets = [f"{k}={v}" for k, v in TINY_CONFIG.items() if not isinstance(v, dict)]
    sets += [f"{k}.{kk}={vv}" for k, v in TINY_CONFIG.items() if isinstance(v, dict) for kk, vv in v.items()]
    return [x for s in sets for x in ("--set", s)]


def _train_args(args, root, tmp_path):
    """The trained fixture's arguments with TINY_CONFIG, training into tmp_path/exp."""
    return [a if a != str(root / "exp") else str(tmp_path / "exp") for a in args] + _tiny_sets()


def test_cmvn_of_another_dimension_is_named(trained, tmp_path, capsys):
    """A cmvn.ark of the wrong dimension used to be blamed on the features."""
    import kaldiio

    root, paths, args = trained
    cm = tmp_path / "cmvn40.ark"
    stats = np.zeros((2, 41))
    stats[0, -1], stats[1, :-1] = 10, 10
    kaldiio.save_mat(str(cm), stats)
    args = [a if a != str(paths["cmvn_path"]) else str(cm) for a in _train_args(args, root, tmp_path)]
    _fails(capsys, train.main, args + ["--set", "max_epochs=1"],
           r"cmvn40\.ark: CMVN stats have dimension 40, but the features of .* have 13")
    assert not (tmp_path / "exp").exists()
    # decoding with an exp dir whose config names that file
    exp = tmp_path / "exp2"
    shutil.copytree(root / "exp", exp)
    cfg = (exp / "config.yaml").read_text()
    (exp / "config.yaml").write_text(re.sub(r"cmvn: .*", f"cmvn: {cm}", cfg))
    _fails(capsys, decode.main, ["--exp-dir", str(exp), "--data-dir", str(paths["valid_dir"]), "--out-dir",
                                 str(tmp_path / "out")], r"cmvn40\.ark: CMVN stats have dimension 40")


@pytest.mark.parametrize("setting, pattern", [
    ("aux_conf.spk_lambda=.nan", r"key 'aux_conf\.spk_lambda' must be a finite number, got nan"),
    ("aux_conf.spk_weight=-1", r"key 'aux_conf\.spk_weight' must lie in \[0\.0, inf\), got -1"),
    ("lr=-0.001", r"key 'lr' must lie in \(0\.0, inf\), got -0\.001"),
    ("lr=.inf", r"key 'lr' must be a finite number"),
    ("max_epochs=0", r"key 'max_epochs' must lie in \[1, inf\), got 0"),
    ("aux_conf.spk_layer=9", r"spk_layer=9 is out of range: the encoder has layers 1\.\.2"),
    ("ctc_unalignable=drop", r"key 'ctc_unalignable' must be one of skip, error"),
])
def test_config_values_are_checked_before_anything_is_written(trained, tmp_path, capsys, setting, pattern):
    """spk_lambda: .nan used to train '3 epochs (0 steps)' and exit 0; spk_layer out of range left a stub
    exp dir. Now one line naming the key, and no exp dir at all."""
    root, paths, args = trained
    _fails(capsys, train.main, _train_args(args, root, tmp_path) + ["--set", setting], pattern)
    assert not (tmp_path / "exp").exists()


def _long_transcripts(d: Path, utts: list[str]):
    """Give ``utts`` of dump dir ``d`` transcripts far longer than their frames allow."""
    lines = (d / "text").read_text().splitlines()
    out = [f"{ln.split()[0]} {' '.join(['LEFT RIGHT'] * 40)}" if ln.split()[0] in utts else ln for ln in lines]
    (d / "text").write_text("\n".join(out) + "\n")


def test_ctc_unalignable_utterances_are_counted_and_skipped(trained, tmp_path, capsys):
    """Half the set with over-long transcripts used to train with rc 0 and a halved loss, silently."""
    root, paths, args = trained
    train_dir = _copy_set(paths["train_dir"], tmp_path / "train")
    utts = (train_dir / "feats.scp").read_text().split()[::2][::2]  # every other utterance
    _long_transcripts(train_dir, utts)
    args = [a if a != str(paths["train_dir"]) else str(train_dir) for a in _train_args(args, root, tmp_path)]
    train.main(args + ["--set", "max_epochs=1"])
    err = capsys.readouterr().err
    assert re.search(rf"{len(utts)} of 18 utterances of .*train cannot be aligned by CTC at subsampling 2 "
                     r"\(e\.g\. spk\d-\d\d: \d+ tokens incl\. blanks between repeats, \d+ frames\); they are skipped",
                     err), err[-2000:]
    assert "cannot be aligned" in (tmp_path / "exp" / "train.log").read_text()
    # as an error
    _fails(capsys, train.main, [a if a != str(tmp_path / "exp") else str(tmp_path / "exp_err") for a in args]
           + ["--set", "ctc_unalignable=error"], rf"train: {len(utts)} of 18 utterances .* cannot be aligned")
    assert not (tmp_path / "exp_err" / "best.pt").exists()


def test_ctc_unalignable_everywhere_is_an_error(trained, tmp_path, capsys):
    root, paths, args = trained
    train_dir = _copy_set(paths["train_dir"], tmp_path / "train")
    _long_transcripts(train_dir, (train_dir / "feats.scp").read_text().split()[::2])
    args = [a if a != str(paths["train_dir"]) else str(train_dir) for a in _train_args(args, root, tmp_path)]
    _fails(capsys, train.main, args, r"18 of 18 utterances .* cannot be aligned .*; none is left to train on")
    assert not (tmp_path / "exp" / "best.pt").exists()


def test_training_that_takes_no_step_fails_and_leaves_no_best_pt(trained, tmp_path, capsys):
    """Every batch non-finite (NaN features), fewer batches than max_bad_steps: used to exit 0 with an
    untrained best.pt that stage 4 decoded."""
    import kaldiio

    root, paths, args = trained
    train_dir = _copy_set(paths["train_dir"], tmp_path / "train")
    mats = dict(kaldiio.load_scp(str(train_dir / "feats.scp")))
    with kaldiio.WriteHelper(f"ark,scp:{train_dir / 'nan.ark'},{train_dir / 'feats.scp'}") as w:
        for k, m in mats.items():
            w(k, np.full_like(m, np.nan))
    args = [a if a != str(paths["train_dir"]) else str(train_dir) for a in _train_args(args, root, tmp_path)]
    _fails(capsys, train.main, args + ["--set", "max_bad_steps=1000"],
           r"epoch 1: none of \d+ steps could be taken \(\d+ non-finite loss or gradient\)")
    assert not (tmp_path / "exp" / "best.pt").exists() and not (tmp_path / "exp" / "epoch1.pt").exists()


def test_empty_set_is_not_decoded_or_scored(trained, tmp_path, capsys):
    """Used to print '%WER 0.00' with an RTF of 6e7."""
    from asr_gr.bin import score

    root, paths, _ = trained
    d = tmp_path / "empty"
    d.mkdir()
    for name in ("feats.scp", "text", "utt2spk", "spk2utt", "utt2num_frames"):
        (d / name).write_text("")
    _fails(capsys, decode.main, ["--exp-dir", str(root / "exp"), "--data-dir", str(d), "--out-dir",
                                 str(tmp_path / "out")], r"empty/feats\.scp: no utterances: there is nothing to decode")
    assert not (tmp_path / "out").exists()
    (tmp_path / "hyp.txt").write_text("")
    _fails(capsys, score.main, ["--ref-dir", str(d), "--hyp", str(tmp_path / "hyp.txt"), "--out-dir",
                                str(tmp_path / "score")], r"empty/text: no utterances: there is nothing to score")
    _fails(capsys, score.main, ["--ref-dir", str(paths["valid_dir"]), "--hyp", str(tmp_path / "hyp.txt"),
                                "--out-dir", str(tmp_path / "score")], r"hyp\.txt: no hypotheses")
    assert not (tmp_path / "score").exists()


def test_partial_hyp_is_scored_with_a_warning_and_not_compared(trained, tmp_path, capsys):
    import json

    from asr_gr.bin import compare, results, score

    root, paths, _ = trained
    ref = paths["valid_dir"]
    refs = (ref / "text").read_text().splitlines()  # 6 utterances
    full = "".join(ln + "\n" for ln in refs)
    for name, hyp in (("full", full), ("part", "".join(ln + "\n" for ln in refs[:3]))):
        exp = tmp_path / "exp" / name
        shutil.copytree(root / "exp", exp, ignore=shutil.ignore_patterns("decode_*", "*.pt"))
        (exp / "hyp.txt").write_text(hyp)
        score.main(["--ref-dir", str(ref), "--hyp", str(exp / "hyp.txt"), "--out-dir",
                    str(exp / "decode_dev" / "score")])
    err = capsys.readouterr().err
    assert re.search(r"WARNING: .*part/hyp\.txt: 3 of 6 reference utterances have no hypothesis \(spk1-00, "
                     r"spk1-01, spk1-02\); they are scored as deletions", err), err
    res = json.loads((tmp_path / "exp" / "part" / "decode_dev" / "score" / "result.json").read_text())
    words = [len(ln.split()) - 1 for ln in refs]
    assert res["missing_hyps"] == 3 and res["wer"] == round(100.0 * sum(words[3:]) / sum(words), 2)
    # same utterances, the partial one scored against a 3-utterance reference: different lists
    small = _copy_set(ref, tmp_path / "small")
    (small / "text").write_text("".join(ln + "\n" for ln in refs[:3]))
    score.main(["--ref-dir", str(small), "--hyp", str(tmp_path / "exp" / "part" / "hyp.txt"), "--out-dir",
                str(tmp_path / "exp" / "part" / "decode_dev" / "score")])
    capsys.readouterr()
    _fails(capsys, results.main, ["--exp-root", str(tmp_path / "exp"), "--test-set", "dev"],
           r"part/decode_dev/score/result\.json: cannot put 'part' beside 'full' .* different utterance lists "
           r"or references \(6 vs 3 utterances\)")
    assert not (tmp_path / "exp" / "RESULTS.md").exists()
    _fails(capsys, compare.main, [str(tmp_path / "exp" / "full"), str(tmp_path / "exp" / "part"), "--set", "dev",
                                  "--out", str(tmp_path / "compare.md")], r"cannot put 'part' beside 'full'")
    # same count, different reference words
    (small / "text").write_text("".join(ln + " X\n" for ln in refs))
    score.main(["--ref-dir", str(small), "--hyp", str(tmp_path / "exp" / "full" / "hyp.txt"), "--out-dir",
                str(tmp_path / "exp" / "part" / "decode_dev" / "score")])
    _fails(capsys, results.main, ["--exp-root", str(tmp_path / "exp"), "--test-set", "dev"],
           r"the same number of utterances but different utterances or references")
