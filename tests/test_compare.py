import json
import subprocess
import sys

import numpy as np
import pytest

from asr_gr.score.significance import markdown, paired_bootstrap, system_from_per_utt
from asr_gr.score.wer import score, write_reports
from asr_gr.utils import DataError


def _system(name, errs, refs=None, spks=None):
    n = len(errs)
    refs = refs if refs is not None else [10] * n
    spks = spks if spks is not None else [f"s{i % 6}" for i in range(n)]
    per_utt = {f"u{i:03d}": {"spk": spks[i], "ref_words": refs[i], "errors": errs[i]} for i in range(n)}
    return system_from_per_utt(name, per_utt)


def test_identical_systems_not_different():
    rng = np.random.default_rng(1)
    errs = rng.integers(0, 4, 60).tolist()
    r = paired_bootstrap(_system("a", errs), _system("b", errs), num_samples=500)
    assert r.delta == 0
    assert r.ci[0] <= 0 <= r.ci[1] and r.ci_spk[0] <= 0 <= r.ci_spk[1]
    assert r.p == pytest.approx(1.0) and not r.significant
    assert r.better == [] and r.worse == []


def test_more_errors_on_most_utterances_is_significant():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 3, 80)
    b = a + (rng.random(80) < 0.8)  # one error more on ~80% of the utterances
    r = paired_bootstrap(_system("a", a.tolist()), _system("b", b.tolist()), num_samples=1000, seed=3)
    assert r.delta > 0
    assert r.p < 0.05 and r.significant
    assert r.ci[0] > 0  # the CI excludes 0
    # the same seed gives the same answer
    r2 = paired_bootstrap(_system("a", a.tolist()), _system("b", b.tolist()), num_samples=1000, seed=3)
    assert (r2.ci, r2.p) == (r.ci, r.p)


def test_speaker_level_deltas():
    # s1: 20 words, a 2 errors, b 0 -> better; s2: 10 words, a 1, b 3 -> worse; s3 unchanged
    a = _system("a", [1, 1, 1, 0], refs=[10, 10, 10, 5], spks=["s1", "s1", "s2", "s3"])
    b = _system("b", [0, 0, 3, 0], refs=[10, 10, 10, 5], spks=["s1", "s1", "s2", "s3"])
    r = paired_bootstrap(a, b, num_samples=200)
    assert r.spk_delta["s1"] == pytest.approx((10.0, 0.0, -10.0))
    assert r.spk_delta["s2"] == pytest.approx((10.0, 30.0, 20.0))
    assert r.spk_delta["s3"] == (0.0, 0.0, 0.0)
    assert r.better == ["s1"] and r.worse == ["s2"]
    assert r.wer_a == pytest.approx(100 * 3 / 35) and r.delta == pytest.approx(0.0)


@pytest.mark.parametrize("num_spk", [1, 4])
def test_speaker_bootstrap_is_na_with_few_speakers(num_spk):
    # The case that printed "[+7.60, +7.60], p < 0.001" on a one-speaker test set.
    rng = np.random.default_rng(4)
    a = rng.integers(0, 3, 40)
    b = a + (rng.random(40) < 0.8)
    spks = [f"s{i % num_spk}" for i in range(40)]
    sa, sb = _system("a", a.tolist(), spks=spks), _system("b", b.tolist(), spks=spks)
    r = paired_bootstrap(sa, sb, num_samples=500)
    assert r.ci_spk is None and r.p_spk is None
    assert r.significant  # rests on the utterance-level test alone, which is valid
    md = markdown([sa, sb], [r], test_set="test", num_samples=500)
    row = next(line for line in md.splitlines() if line.startswith("| a | b |"))
    assert f"n/a ({num_spk} speaker{'s' if num_spk > 1 else ''})" in row
    assert row.count("n/a") == 2 and row.count("< 0.002") == 1  # only the utterance-level p


def test_difference_carried_by_one_speaker_is_not_significant():
    # 6 speakers; only s0's utterances get worse (a lot): utterance-level p is small, but drawing
    # speakers shows the effect is one speaker's, so the speaker-level CI contains 0.
    spks = [f"s{i % 6}" for i in range(120)]
    a = [1] * 120
    b = [6 if s == "s0" else 1 for s in spks]
    r = paired_bootstrap(_system("a", a, spks=spks), _system("b", b, spks=spks), num_samples=1000)
    assert r.p < 0.05 and r.ci_spk is not None and r.ci_spk[0] <= 0
    assert not r.significant


def test_different_utterance_sets_are_an_error():
    with pytest.raises(DataError, match="different utterances"):
        paired_bootstrap(_system("a", [1, 2]), _system("b", [1, 2, 3]))


def test_compare_cli_from_score_dirs(tmp_path):
    refs = {f"s{s}-{u}": "GO LEFT NOW STOP" for s in range(3) for u in range(8)}
    u2s = {utt: utt.split("-")[0] for utt in refs}
    hyp_b = {utt: ("GO RIGHT NOW" if i % 5 else "GO LEFT NOW STOP") for i, utt in enumerate(sorted(refs))}
    for name, hyps in (("A", refs), ("B", hyp_b)):
        write_reports(score(refs, hyps, u2s), tmp_path / name / "decode_test" / "score")
    per_utt = json.loads((tmp_path / "B" / "decode_test" / "score" / "per_utt.json").read_text())
    assert per_utt["s0-1"]["spk"] == "s0" and per_utt["s0-1"]["errors"] == 2
    out = tmp_path / "compare.md"
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.compare", str(tmp_path / "A"), str(tmp_path / "B"),
                        "--set", "test", "--out", str(out), "--num-samples", "200"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    md = out.read_text()
    assert "| A | B | 0.00 |" in md and "| yes |" in md
    assert (tmp_path / "compare_per_spk.png").stat().st_size > 1000
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.compare", str(tmp_path / "A"), str(tmp_path / "C"),
                        "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 1 and "per_utt.json" in p.stderr


def test_compare_on_a_list_of_speakers(tmp_path):
    """--spk-list compares on those speakers' utterances only (e.g. one accent); an unknown id is
    a one-line error naming the file and line."""
    refs = {f"s{s}-{u}": "GO LEFT NOW STOP" for s in range(3) for u in range(8)}
    u2s = {utt: utt.split("-")[0] for utt in refs}
    hyp_b = {utt: ("GO RIGHT NOW" if utt.startswith("s2") else "GO LEFT NOW STOP") for utt in refs}  # s2 only
    for name, hyps in (("A", refs), ("B", hyp_b)):
        write_reports(score(refs, hyps, u2s), tmp_path / name / "decode_test" / "score")
    out = tmp_path / "compare.md"

    def run(spk_list):
        (tmp_path / "spk").write_text(spk_list)
        return subprocess.run([sys.executable, "-m", "asr_gr.bin.compare", str(tmp_path / "A"), str(tmp_path / "B"),
                               "--out", str(out), "--num-samples", "200", "--spk-list", str(tmp_path / "spk")],
                              capture_output=True, text=True)

    p = run("# the accent\ns2 en-029\n")
    assert p.returncode == 0, p.stderr[-2000:]
    md = out.read_text()
    assert "| B | 8 | 1 | 32 | 50.00 | - |" in md and "| s0 |" not in md
    assert md.splitlines()[0] == f"# Comparison of systems on `test` (speakers of `{tmp_path / 'spk'}`)"
    p = run("s0\ns1\n")
    assert p.returncode == 0 and "| B | 16 | 2 | 64 | 0.00 |" in out.read_text()
    p = run("s0\ns9\n")
    assert p.returncode == 1 and f"{tmp_path / 'spk'}:2" in p.stderr and "'s9'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
