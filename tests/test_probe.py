"""Speaker probing: splits, identification accuracy and verification EER with intervals, paired
comparisons, odd sets (one-utterance speakers, one speaker), and the CLI's files per probe set."""

import logging
import math

import numpy as np
import pytest
import torch

from asr_gr.analysis import probe as P
from asr_gr.analysis.probe import (accuracy_ci, eer, eer_ci, make_trials, paired_acc, paired_eer, pooled_layers,
                                   probe, split_by_speaker, train_probe)
from asr_gr.bin import probe as probe_bin
from asr_gr.config import resolve
from asr_gr.data.dataset import FeatureDataset
from asr_gr.features.cmvn import CMVN
from asr_gr.models.asr_model import build_model
from asr_gr.train.trainer import TRAIN_DEFAULTS, Trainer
from asr_gr.utils import DataError
from tiny_data import TINY_CONFIG, make_dump, make_setup


COMMON = ["--epochs", "30", "--num-samples", "200"]


def _cfg():
    return resolve(TRAIN_DEFAULTS, None, [([k], v) for k, v in {**TINY_CONFIG, "max_epochs": 1}.items()])


def _model():
    torch.manual_seed(0)
    return build_model(_cfg(), 13, 10, 3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained system (exp dir) plus two probe sets: 'probe' (6 unseen speakers x 6) and the
    training dump (3 speakers)."""
    tmp = tmp_path_factory.mktemp("probe")
    paths = make_setup(tmp / "data")
    t = Trainer(_cfg(), tmp / "exp", progress=False, **paths)
    t.write_setup({"token_list": str(paths["token_list"]), "cmvn": str(paths["cmvn_path"])})
    t.run()
    probe_set = make_dump(tmp / "data", "probe", n_spk=6, utts_per_spk=6, seed=5, prefix="new")
    probe_bin.main(COMMON + ["--exp-dir", str(tmp / "exp"), "--data-dir", str(probe_set)])
    return tmp / "exp", paths, probe_set


def test_split_keeps_every_speaker_on_both_sides():
    utts = [f"s{i % 3}-{i}" for i in range(12)] + ["lonely-1"]
    spk = {u: u.split("-")[0] for u in utts}
    tr, te = split_by_speaker(utts, spk, test_fraction=0.25, seed=1)
    assert not set(tr) & set(te) and len(tr) + len(te) == 12  # the one-utterance speaker is dropped
    assert {spk[utts[i]] for i in tr} == {spk[utts[i]] for i in te} == {"s0", "s1", "s2"}


def test_probe_accuracy_tracks_the_information_present():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat_interleave(10)
    informative = torch.randn(40, 8, generator=g) * 0.5 + torch.nn.functional.one_hot(y, 8).float() * 2
    noise = torch.randn(40, 8, generator=g)
    tr, te = list(range(0, 40, 2)), list(range(1, 40, 2))
    assert train_probe(informative[tr], y[tr], informative[te], y[te], 4, "linear") >= 90.0
    assert train_probe(noise[tr], y[tr], noise[te], y[te], 4, "mlp") <= 60.0


def test_eer_by_hand():
    assert eer([0.9, 0.8, 0.6, 0.3], [1, 0, 1, 0]) == pytest.approx(50.0)
    # operating points (FAR, FRR): (0, 1) (0, .5) then the tie at .5 accepts a target and a non-target:
    # (.5, 0); the miss/false-alarm crossing lies half-way along that segment, at 25 %
    assert eer([1.0, 0.5, 0.5, 0.0], [1, 1, 0, 0]) == pytest.approx(25.0)
    assert eer([0.2, 0.1, 0.9, 0.8], [1, 1, 0, 0]) == pytest.approx(100.0)  # scores point the wrong way
    assert math.isnan(eer([0.3, 0.4], [0, 0]))  # no target trial: undefined, not 0


def test_bootstrap_eer_of_a_speaker_draw_is_the_eer_of_its_trials_repeated():
    """Each draw's EER (one matrix product over per-speaker counts) equals the plain EER of the trials
    with every speaker's trials repeated as often as the draw picked that speaker."""
    rng = np.random.default_rng(3)
    gid = rng.integers(0, 7, 400)
    target = rng.random(400) < 0.2
    scores = np.round(rng.standard_normal(400) + 1.5 * target, 1)  # ties between operating points
    g, counts = P.speaker_draws([f"s{i}" for i in gid], 20, seed=5)
    fast = P._eers_of_draws(scores, target, g, counts)
    for b in range(20):
        reps = counts[b, g].astype(int)
        ref = eer(np.repeat(scores, reps), np.repeat(target, reps))
        assert fast[b] == pytest.approx(ref, abs=1e-9) or (math.isnan(fast[b]) and math.isnan(ref))


def _embeddings(n_spk, per_spk, sep, seed=0, dim=16):
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((n_spk, dim)) * sep
    spk = np.repeat(np.arange(n_spk), per_spk)
    x = centre[spk] + rng.standard_normal((len(spk), dim))
    return torch.tensor(x), [f"s{s:02d}" for s in spk]


def _verify(n_spk, per_spk, sep, seed=0):
    x, spk = _embeddings(n_spk, per_spk, sep, seed)
    utts = [f"{s}-{i:03d}" for i, s in enumerate(spk)]
    tr, te = split_by_speaker(utts, dict(zip(utts, spk)), 0.3, seed)
    enrol, test, target = make_trials(spk, tr, te, num_nontarget=5000, seed=seed)
    scores = P.cosine_scores(x, tr, enrol, test)
    return eer_ci(scores, target, [spk[i] for i in test], 1000, seed)


def test_eer_separable_random_and_narrowing_intervals():
    e, ci = _verify(8, 10, sep=50.0)
    assert e == 0.0
    e, ci = _verify(30, 10, sep=0.0, seed=1)  # no speaker information (over 40 seeds the CI held 50 in 37)
    assert 40.0 < e < 60.0 and ci[0] < 50.0 < ci[1]
    small, big = _verify(6, 6, sep=0.7, seed=1), _verify(60, 12, sep=0.7, seed=1)
    assert big[1][1] - big[1][0] < 0.6 * (small[1][1] - small[1][0])
    e, ci = _verify(4, 10, sep=0.7)  # a speaker-level bootstrap over 4 speakers: n/a, never a number
    assert not math.isnan(e) and all(math.isnan(c) for c in ci)


def test_accuracy_intervals():
    rng = np.random.default_rng(0)
    acc, ci = accuracy_ci(rng.random(40) < 0.7)
    acc2, ci2 = accuracy_ci(rng.random(1000) < 0.7)
    assert ci[0] < acc < ci[1] and ci2[1] - ci2[0] < 0.4 * (ci[1] - ci[0])
    acc, ci = accuracy_ci(np.ones(30, bool))  # saturated: an interval with width, not [100, 100]
    assert acc == 100.0 and 85.0 < ci[0] < 100.0 and ci[1] == pytest.approx(100.0)


def test_trials_all_targets_sampled_nontargets_seeded():
    spk = [f"s{i // 10}" for i in range(100)]
    tr = [i for i in range(100) if i % 10 >= 3]
    te = [i for i in range(100) if i % 10 < 3]
    enrol, test, target = make_trials(spk, tr, te, num_nontarget=500, seed=3)
    assert target.sum() == 10 * 3 * 7 and (~target).sum() == 500
    assert all((spk[e] == spk[t]) == g for e, t, g in zip(enrol, test, target))
    again = make_trials(spk, tr, te, num_nontarget=500, seed=3)
    assert (again[0] == enrol).all() and (again[1] == test).all()
    assert make_trials(spk, tr, te, num_nontarget=10 ** 6, seed=3)[2].size == 3 * 70 + 3 * 70 * 9


def test_paired_comparison_self_is_zero_and_a_real_difference_is_found():
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.6
    assert paired_acc(a, a) == (0.0, (0.0, 0.0))
    b = a | (rng.random(200) < 0.5)  # b is right wherever a is, and more often
    d, ci = paired_acc(a, b)
    assert d > 0 and ci[0] > 0
    x, spk = _embeddings(20, 10, sep=0.6)
    utts = [f"{s}-{i:03d}" for i, s in enumerate(spk)]
    tr, te = split_by_speaker(utts, dict(zip(utts, spk)), 0.3, 0)
    enrol, test, target = make_trials(spk, tr, te, 5000, 0)
    groups = [spk[i] for i in test]
    sa = P.cosine_scores(x, tr, enrol, test)
    assert paired_eer(sa, sa, target, groups) == (0.0, (0.0, 0.0))
    sb = P.cosine_scores(x + torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 3, tr, enrol, test)
    d, ci = paired_eer(sa, sb, target, groups)  # noise added: EER goes up, and the CI says so
    assert d > 0 and ci[0] > 0


def test_pooling_does_not_depend_on_batching(tmp_path):
    ds = FeatureDataset(make_dump(tmp_path, "p", n_spk=3, utts_per_spk=4))
    m = _model()
    u1, big = pooled_layers(m, [ds], batch_frames=40000)
    u2, one = pooled_layers(m, [ds], batch_frames=1)  # one utterance per batch
    assert u1 == u2 == sorted(ds.utts)
    for a, b in zip(big, one):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_one_utterance_speakers_are_left_out_with_a_note(tmp_path, caplog):
    main = FeatureDataset(make_dump(tmp_path, "main", n_spk=3, utts_per_spk=6))
    solo = FeatureDataset(make_dump(tmp_path, "solo", n_spk=2, utts_per_spk=1, prefix="solo"))
    with caplog.at_level(logging.INFO):
        res = probe(_model(), [main, solo], epochs=5, num_samples=50)
    assert res.set_name == "main+solo"
    assert "2 speaker(s) with a single utterance left out" in caplog.text
    assert res.meta["single_utterance_speakers_left_out"] == 2 and res.meta["speakers"] == 3
    assert not any(u.startswith("solo") for u in res.test_utts + res.trials[0] + res.trials[1])


def test_a_set_with_one_speaker_is_a_one_line_error(tmp_path):
    one = FeatureDataset(make_dump(tmp_path, "one", n_spk=1, utts_per_spk=6))
    with pytest.raises(DataError, match=r"probe set 'one' has 1 speaker\(s\) \(6 utterances\)"):
        probe(_model(), [one], epochs=5)
    lonely = FeatureDataset(make_dump(tmp_path, "lonely", n_spk=3, utts_per_spk=1))
    with pytest.raises(DataError, match="has 0 speaker.*with at least 2 utterances"):
        probe(_model(), [lonely], epochs=5)


def test_cli_two_sets_two_dirs_with_intervals_and_paired_compare(trained, capsys):
    exp, paths, probe_set = trained
    first = exp / "probe_probe"
    stamp = (first / "probe.tsv").stat().st_mtime_ns
    probe_bin.main(COMMON + ["--exp-dir", str(exp), "--data-dir", str(paths["train_dir"])])
    second = exp / "probe_train"
    assert (first / "probe.tsv").stat().st_mtime_ns == stamp  # the second set did not overwrite the first
    for d in (first, second):
        for f in ("probe.tsv", "probe.png", "per_utt.tsv", "trials.tsv", "probe.json"):
            assert (d / f).exists(), d / f
    rows = probe_bin.read_tsv(first / "probe.tsv")
    assert [r.layer for r in rows] == [0, 1, 2] and rows[0].dim == 2 * 13
    assert (first / "probe.tsv").read_text().splitlines()[1].startswith("probe\t0\t26\t")  # names its set
    for r in rows:  # 6 speakers: every figure has its interval
        assert r.linear_ci[0] <= r.linear_acc <= r.linear_ci[1] and r.mlp_ci[0] <= r.mlp_acc <= r.mlp_ci[1]
        assert r.eer_ci[0] <= r.eer <= r.eer_ci[1]
    assert rows[0].linear_acc > rows[0].chance  # the tiny data's speakers differ in their mean
    assert rows[0].eer < 50.0
    train_rows = probe_bin.read_tsv(second / "probe.tsv")  # 3 speakers: speaker bootstrap is n/a
    assert all(math.isnan(r.eer_ci[0]) for r in train_rows) and "\tn/a\tn/a" in (second / "probe.tsv").read_text()
    out = capsys.readouterr().out
    assert "[n/a]" in out and "chance EER 50 %" in out

    probe_bin.main(["--compare", str(exp), str(exp), "--set", "probe", "--num-samples", "200"])
    md = (exp.parent / "probe_compare_probe.md").read_text()
    assert "| 2 | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] | +0.0 [+0.0, +0.0] |" in md
    assert (exp.parent / "probe_compare_probe.png").stat().st_size > 1000


def test_compare_refuses_different_sets(trained, tmp_path):
    exp, paths, probe_set = trained
    other = tmp_path / "other"
    (other / "probe_probe").mkdir(parents=True)
    for f in ("probe.tsv", "trials.tsv"):
        (other / "probe_probe" / f).write_bytes((exp / "probe_probe" / f).read_bytes())
    lines = (exp / "probe_probe" / "per_utt.tsv").read_text().splitlines()
    (other / "probe_probe" / "per_utt.tsv").write_text("\n".join(lines[:-1]) + "\n")  # one utterance fewer
    with pytest.raises(SystemExit):
        probe_bin.main(["--compare", str(exp), str(other), "--set", "probe"])
    with pytest.raises(DataError, match="other test utterances"):
        P.compare_probe_dirs(exp / "probe_probe", other / "probe_probe")


# ---------------------------------------------------------------------------------------------------
# saturation: a probe at the ceiling (or at chance) on every layer is flagged, not reported as a finding


def _rows(accs, cis, eers, eer_cis, chance=10.0):
    return [P.ProbeRow(i, 8, a, a, chance, ci, ci, e, eci) for i, (a, ci, e, eci) in enumerate(zip(accs, cis, eers, eer_cis))]


def test_saturation_verdicts_by_hand():
    top = [(97.0, (93.3, 100.0)), (100.0, (88.6, 100.0)), (96.7, (90.0, 99.999))]  # 99.999 prints as 100.00
    eers = [(9.5, (5.2, 13.1))] * 3
    v = P.saturation(_rows([a for a, _ in top], [c for _, c in top], [e for e, _ in eers], [c for _, c in eers]))
    assert v == {"linear": "ceiling", "mlp": "ceiling", "eer": "ok"}
    # one layer whose interval stops short of 100 %: the accuracy separates that layer, no flag
    v = P.saturation(_rows([97.0, 90.0], [(93.3, 100.0), (83.3, 96.7)], [9.5, 14.3], [(5.2, 13.1), (9.5, 19.3)]))
    assert v == {"linear": "ok", "mlp": "ok", "eer": "ok"}
    # chance everywhere (lower bounds at or below chance), EER intervals holding 50 %
    v = P.saturation(_rows([12.0, 8.0], [(2.0, 25.0), (0.0, 20.0)], [48.0, 51.0], [(40.0, 56.0), (44.0, 58.0)]))
    assert v == {"linear": "chance", "mlp": "chance", "eer": "chance"}
    # separable everywhere: EER 0 with 0 inside every interval = the verification ceiling
    assert P.saturation(_rows([50.0], [(30.0, 70.0)], [0.0], [(0.0, 1.5)]))["eer"] == "ceiling"
    # intervals so wide they reach both 100 % and chance on every layer
    assert P.saturation(_rows([60.0], [(5.0, 100.0)], [30.0], [(10.0, 45.0)]))["linear"] == "ceiling+chance"
    # an undefined interval (n/a) decides nothing
    assert P.saturation(_rows([100.0], [(math.nan, math.nan)], [0.0], [(math.nan, math.nan)])) == \
        {"linear": "n/a", "mlp": "n/a", "eer": "n/a"}


def _separable_dump(root, name="sep", n_spk=6, utts_per_spk=6):
    """A dump whose speakers each have their own random mean (scale 3, noise 0.05): identification is
    perfect on every layer."""
    import kaldiio

    d = make_dump(root, name, n_spk=n_spk, utts_per_spk=utts_per_spk, seed=7, prefix="sep")
    feats = dict(kaldiio.load_scp(str(d / "feats.scp")))
    centre = np.random.default_rng(3).standard_normal((n_spk, next(iter(feats.values())).shape[1])) * 3
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats_sep.ark'},{d / 'feats.scp'}") as w:
        for u, x in feats.items():
            s = int(u[len("sep"):].split("-")[0])
            w(u, ((x - s) * 0.05 + centre[s]).astype(np.float32))  # make_dump's features: noise + s
    return d


def test_cli_flags_a_saturated_probe_in_every_output(trained, tmp_path, capsys):
    exp, paths, _ = trained
    sep = _separable_dump(tmp_path)
    probe_bin.main(COMMON + ["--exp-dir", str(exp), "--data-dir", str(sep)])
    out = capsys.readouterr().out
    d = exp / "probe_sep"
    rows = probe_bin.read_tsv(d / "probe.tsv")
    assert all(r.linear_acc > 90.0 and r.linear_ci[1] == pytest.approx(100.0) for r in rows)
    assert rows[0].eer_ci[0] > 0.0  # while the EER still tells layer 0 from perfect: saturated accuracy only
    lines = (d / "probe.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    assert head[-3:] == ["linear_sat", "mlp_sat", "eer_sat"]
    assert {tuple(x.split("\t")[-3:]) for x in lines[1:]} == {("ceiling", "ceiling", "ok")}  # every row, machine-readable
    meta = __import__("json").loads((d / "probe.json").read_text())
    assert meta["saturation"]["linear"] == "ceiling" and "ceiling" in meta["saturation_rule"]
    assert "WARNING: linear-probe accuracy is at the ceiling (every layer's 95 % CI reaches 100 %)" in out
    # a table written before the saturation columns still reads (and its verdict is recomputed)
    old = tmp_path / "old.tsv"
    old.write_text("\n".join("\t".join(x.split("\t")[:13]) for x in lines) + "\n")
    assert P.saturation(probe_bin.read_tsv(old)) == meta["saturation"]
    # the paired comparison marks the saturated columns and says why
    probe_bin.main(["--compare", str(exp), str(exp), "--set", "sep", "--num-samples", "200"])
    md = (exp.parent / "probe_compare_sep.md").read_text()
    assert "| layer | Δ linear acc [95% CI] ‡ | Δ MLP acc [95% CI] ‡ |" in md
    assert "‡ saturated on every layer" in md and "linear acc ceiling" in md
    assert f"WARNING: {exp.name}: linear-probe accuracy is at the ceiling" in capsys.readouterr().out
    # the probe set of the fixture is not saturated: no flag there
    assert "ok\tok\tok" in (exp / "probe_probe" / "probe.tsv").read_text().splitlines()[1]


def test_grid_summary_marks_a_saturated_run(trained, tmp_path):
    from asr_gr.bin import grid

    exp, _, _ = trained
    sep = _separable_dump(tmp_path / "data")
    root = tmp_path / "exp"
    res = probe(_model(), [FeatureDataset(sep)], epochs=30, num_samples=200)
    P.write_probe_dir(root / "grid_none" / "probe_sep", res)
    P.write_probe_dir(root / "grid_none" / "probe_probe", probe(_model(), [FeatureDataset(exp.parent / "data" / "probe")],
                                                                 epochs=30, num_samples=200))
    md = grid.summarise([{"aux": "none"}], root, "test", "train_heldout")
    sec = md.split("## Speaker probing on `sep`")[1].split("## ")[0]
    assert "| grid_none ‡ |" in sec and "‡ saturated on every layer" in sec and "`grid_none`: linear acc ceiling" in sec
    assert "‡" not in md.split("## Speaker probing on `probe`")[1].split("## ")[0]
