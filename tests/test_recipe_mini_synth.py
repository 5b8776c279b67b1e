"""End to end: egs/mini_synth/asr1/run.sh on a tiny corpus, all stages, all three systems."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import copy_recipe_run

from asr_gr.data.kaldi_dir import read_table

LM_SETUP = "beam100_lm1_ws0"  # run.sh's LM decoding setup


@pytest.fixture(scope="module")
def recipe(mini_synth_master, tmp_path_factory):
    """This module's own copy of the session's tiny recipe run (conftest.mini_synth_master: ./run.sh, all
    stages it runs by default, three systems), for the tests below that rerun stages and change files."""
    assert mini_synth_master.process.returncode == 0, mini_synth_master.process.stderr[-3000:]
    return copy_recipe_run(mini_synth_master, tmp_path_factory.mktemp("repo"))


def _run(recipe, *args, check=True):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(["./run.sh", "--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "1",
                           *args], cwd=recipe, env=env, capture_output=True, text=True, check=check)


def test_run_sh_all_stages_three_systems(mini_synth_master):
    """./run.sh with its default stages and systems (the session's run: conftest.MINI_SYNTH_MASTER_ARGS,
    i.e. _run's options with --nj 2 and training on 1 thread as --nj 1 has it)."""
    p, recipe = mini_synth_master.process, mini_synth_master.dir
    assert p.returncode == 0, p.stderr[-3000:]
    results = (recipe / "exp" / "RESULTS.md").read_text()
    for aux in ("none", "mtl", "adversarial"):
        assert f"| tiny_{aux} | {aux} |" in results
        exp = recipe / "exp" / f"tiny_{aux}"
        for setup in ("greedy", LM_SETUP):  # greedy and the word LM, side by side
            hyp = read_table(exp / f"decode_test_{setup}" / "hyp.txt", allow_empty_value=True)
            assert set(hyp) == set(read_table(recipe / "data" / "test" / "text"))
            result = (exp / f"decode_test_{setup}" / "score" / "result.txt").read_text()
            assert "%WER" in result and "Sum/Avg" in result
        assert json.loads((exp / f"decode_test_{LM_SETUP}" / "decode_setup.json").read_text())["decoder"] == "flashlight"
        # lexicon-constrained: every hypothesised word is a word of the LM's lexicon
        lex = {ln.split()[0] for ln in (recipe / "data" / "lm" / "char" / "lexicon.txt").read_text().splitlines()}
        hyp = read_table(exp / f"decode_test_{LM_SETUP}" / "hyp.txt", allow_empty_value=True)
        assert set(" ".join(hyp.values()).split()) <= lex
        spks = set(read_table(recipe / "data" / "test" / "utt2spk").values())
        assert all(any(line.startswith(s + " ") for line in result.splitlines()) for s in spks)
        acc = exp / "decode_train_heldout_greedy" / "spk_acc.json"
        assert not (exp / f"decode_train_heldout_{LM_SETUP}").exists()  # the held-out set: greedy only
        assert acc.exists() == (aux != "none")
        for f in ("config.yaml", "train.log", "epoch1.pt", "best.pt", "metrics.jsonl", "curves.png"):
            assert (exp / f).exists(), f
    assert f"WER % greedy [95% CI] | WER % {LM_SETUP} [95% CI] | Δ WER [95% CI] |" in results
    assert "WER" in p.stdout + p.stderr  # the table is printed at the end
    # every stage left a record of how it was run beside its outputs
    for rec, tool in (("data/make_mini_synth", "make_mini_synth"), ("dump/fbank/train/compute_fbank", "compute_fbank"),
                      ("data/token_list/char/tokenizer", "tokenizer"), ("exp/tiny_mtl/train", "train"),
                      ("exp/tiny_mtl/decode_test_greedy/decode", "decode"),
                      ("exp/tiny_mtl/decode_test_greedy/score/score", "score"),
                      ("exp/results", "results")):
        r = json.loads((recipe / f"{rec}.record.json").read_text())
        assert r["tool"] == f"asr_gr.bin.{tool}" and r["cwd"] == str(recipe), rec
    arpa = (recipe / "data" / "lm" / "char" / "lm.arpa").read_text()
    assert arpa.startswith("\\data\\\nngram 1=") and "\\3-grams:" in arpa


def test_rerun_one_stage_resumes_and_reuses(recipe):
    exp = recipe / "exp" / "tiny_adversarial"
    before = (exp / "checkpoint.pt").stat().st_mtime_ns
    p = _run(recipe, "--stage", "3", "--stop-stage", "3", "--aux", "adversarial")
    assert "training already finished" in p.stderr
    assert (exp / "checkpoint.pt").stat().st_mtime_ns == before
    assert json.loads((exp / "train_summary.json").read_text())["epochs"] == 1


def test_unknown_option_is_an_error(recipe):
    p = _run(recipe, "--stage", "5", "--auxx", "mtl", check=False)
    assert p.returncode != 0 and "unknown option '--auxx'" in p.stderr


def test_sentencepiece_tokens_through_the_recipe(recipe):
    _run(recipe, "--stage", "2", "--stop-stage", "5", "--aux", "none", "--token-type", "bpe", "--nbpe", "40",
         "--tag", "tiny_bpe")
    assert (recipe / "data" / "token_list" / "bpe40" / "bpe.model").exists()
    cfg = (recipe / "exp" / "tiny_bpe" / "config.yaml").read_text()
    assert "bpe40/bpe.model" in cfg
    assert "%WER" in (recipe / "exp" / "tiny_bpe" / f"decode_test_{LM_SETUP}" / "score" / "result.txt").read_text()
    lex = (recipe / "data" / "lm" / "bpe40" / "lexicon.txt").read_text().splitlines()
    assert lex and all(ln.split()[1].startswith("\u2581") for ln in lex)  # sentencepiece pieces per word


def _start(recipe, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(["./run.sh", "--corpus-opts", "--tiny", "--train-config", "conf/tiny.yaml", "--nj", "1",
                             *args], cwd=recipe, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_trainings_of_one_exp_dir_at_once_one_refuses(recipe):
    """Two ./run.sh --stage 3 of one tag used to both exit 0, leaving a mixture (config of one, best.pt
    of the other, every epoch twice in metrics.jsonl). Now the second refuses, naming the first."""
    import torch

    args = ("--stage", "3", "--stop-stage", "3", "--aux", "none", "--tag", "tiny_twice",
            "--train-opts", "--set max_epochs=3")
    procs = [_start(recipe, *args) for _ in range(2)]
    outs = [(p.wait(), *p.communicate()) for p in procs]
    rcs = sorted(o[0] for o in outs)
    assert rcs[0] == 0 and rcs[1] != 0, [o[2][-1500:] for o in outs]
    loser = next(o for o in outs if o[0] != 0)
    assert re.search(r"ERROR: exp/tiny_twice: exp dir is in use by pid \d+ on host .*, started", loser[2]), loser[2]
    exp = recipe / "exp" / "tiny_twice"
    epochs = [json.loads(ln)["epoch"] for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    best = torch.load(exp / "best.pt", weights_only=True)
    same = [e for e in (1, 2, 3) if all(torch.equal(best[k], v) for k, v in
                                        torch.load(exp / f"epoch{e}.pt", weights_only=True).items())]
    assert len(same) == 1
    assert not (exp / ".lock").exists()


def test_systems_trained_at_once_are_the_systems_trained_alone(mini_synth_master, recipe):
    """Stage 3 trains the --aux systems at once (--train-jobs auto: the session's run, --nj 2, trained all
    three side by side); each one's model is bit for bit the one a run of that system alone trains."""
    import shutil

    import torch

    assert "stage 3: training 3 of the systems (none mtl adversarial) at once" in mini_synth_master.process.stderr
    shutil.copy(recipe / "conf" / "tiny.yaml", recipe / "conf" / "tiny_alone.yaml")
    p = _run(recipe, "--stage", "3", "--stop-stage", "3", "--aux", "mtl", "--train-config", "conf/tiny_alone.yaml",
             "--train-opts", "--set num_threads=1")
    assert "at once" not in p.stderr
    alone = torch.load(recipe / "exp" / "tiny_alone_mtl" / "best.pt", weights_only=True)
    together = torch.load(recipe / "exp" / "tiny_mtl" / "best.pt", weights_only=True)
    assert alone.keys() == together.keys() and all(torch.equal(alone[k], together[k]) for k in alone)


def test_a_failed_system_stops_the_ones_training_beside_it(recipe):
    """One system of several failing ends stage 3 at once, nonzero, naming its log; the others are stopped
    (their logs say so), not left training on."""
    import shutil

    shutil.copy(recipe / "conf" / "tiny.yaml", recipe / "conf" / "tiny_fail.yaml")
    p = _run(recipe, "--stage", "3", "--stop-stage", "3", "--aux", "none bogus", "--train-config",
             "conf/tiny_fail.yaml", "--train-jobs", "2", "--train-opts", "--set max_epochs=60", check=False)
    assert p.returncode != 0
    assert "exp/tiny_fail_bogus/log/train.log" in p.stderr and "stopping the others" in p.stderr, p.stderr[-2000:]
    assert "terminated by the driver" in (recipe / "exp" / "tiny_fail_none" / "log" / "train.log").read_text()
    assert not (recipe / "exp" / "tiny_fail_none" / "train_summary.json").exists()


def test_stage2_done_marker_checks_its_arks(recipe):
    """A deleted ark part used to be 'done; skipping'; now the set is redone."""
    scp = recipe / "dump" / "fbank" / "test" / "feats.scp"
    ark = Path(scp.read_text().split()[1].rsplit(":", 1)[0])
    if not ark.is_absolute():
        ark = recipe / ark
    ark.unlink()
    p = _run(recipe, "--stage", "2", "--stop-stage", "2")
    assert re.search(r"dump/fbank/test/\.done, but 1 ark\(s\) that feats\.scp names are missing", p.stderr), p.stderr
    assert "dump/fbank/train is done; skipping" in p.stderr
    assert ark.exists()


def test_stage6_probes_each_set_in_its_own_dir_and_compares(recipe):
    p = _run(recipe, "--stage", "6", "--stop-stage", "6", "--aux", "none adversarial", "--probe-sets", "probe test",
             "--probe-opts", "--epochs 20 --num-samples 100", check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    for aux in ("none", "adversarial"):
        for s in ("probe", "test"):
            d = recipe / "exp" / f"tiny_{aux}" / f"probe_{s}"
            assert (d / "probe.tsv").read_text().splitlines()[1].startswith(f"{s}\t0\t")
            assert (d / "trials.tsv").exists() and (d / "per_utt.tsv").exists()
            assert any((d.parent / "tensorboard" / f"probe_{s}").iterdir())  # per-layer curves for TensorBoard
    for s in ("probe", "test"):
        assert (recipe / "exp" / f"probe_compare_{s}.png").exists()
        assert "`tiny_adversarial` − `tiny_none`" in (recipe / "exp" / f"probe_compare_{s}.md").read_text()
    # the held-out utterances of training speakers are the second view (2 per speaker in the tiny corpus)
    p = _run(recipe, "--stage", "6", "--stop-stage", "6", "--aux", "none", "--probe-sets", "train_heldout",
             "--probe-opts", "--epochs 20 --num-samples 100", check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (recipe / "exp" / "tiny_none" / "probe_train_heldout" / "probe.tsv").exists()
    assert (recipe / "exp" / "tiny_none" / "probe_probe" / "probe.tsv").exists()  # not overwritten


def test_outputs_do_not_depend_on_nj_or_batch_size(recipe):
    """Issue: padding leaked into real frames, so hypotheses and probe features changed with
    batch_frames and --nj. Decoding with nj 1 / big batches and nj 2 / small batches, and probing with
    two batch sizes, must give identical files."""
    import shutil
    import sys

    exp = recipe / "exp" / "tiny_adversarial"
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def tool(*args):
        p = subprocess.run([sys.executable, "-m", *args], cwd=recipe, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]

    for name, nj, frames in (("a", "1", "40000"), ("b", "2", "300")):
        tool("asr_gr.bin.decode", "--exp-dir", str(exp), "--data-dir", "dump/fbank/test", "--out-dir",
             str(exp / f"batching_{name}"), "--nj", nj, "--batch-frames", frames)
    a, b = (exp / "batching_a" / "hyp.txt").read_text(), (exp / "batching_b" / "hyp.txt").read_text()
    assert a == b and len(a.splitlines()) == len(read_table(recipe / "data" / "test" / "text"))
    tables = []
    for frames in ("40000", "300"):
        tool("asr_gr.bin.probe", "--exp-dir", str(exp), "--data-dir", "dump/fbank/probe", "--batch-frames", frames,
             "--epochs", "20", "--num-samples", "100")
        tables.append((exp / "probe_probe" / "probe.tsv").read_text())
        shutil.copy(exp / "probe_probe" / "trials.tsv", exp / f"trials_{frames}.tsv")
    assert tables[0] == tables[1]
    # the trials' cosine scores too (to float precision: a different batch shape may sum in another order)
    rows = [[line.split("\t") for line in (exp / f"trials_{f}.tsv").read_text().splitlines()] for f in ("40000", "300")]
    assert len(rows[0]) == len(rows[1]) > 1 and rows[0][0] == rows[1][0]
    for r0, r1 in zip(rows[0][1:], rows[1][1:]):
        for x, y in zip(r0, r1):
            try:
                assert abs(float(x) - float(y)) < 1e-4, (r0, r1)
            except ValueError:
                assert x == y
