"""Power of the speaker-level EER interval: half-width against the number of speakers (subsampled from a
probe dir's trials, then c/sqrt(n)), the speakers a given Δ EER needs, paired and single, and the CLI."""

import math

import numpy as np
import pytest
import torch

from asr_gr.analysis import probe as P
from asr_gr.bin import probe as probe_bin
from asr_gr.utils import DataError


def _probe_dir(out, n_spk=40, per_spk=8, seps=(0.8, 0.4), noise_of=None, seed=0):
    """A probe dir written by the real probe code (probe_layers) from synthetic pooled vectors: speaker
    centres scaled by ``seps`` per layer, plus noise; ``noise_of``: extra noise (per layer) on top, with
    its own seed, for a second system on the same utterances."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(n_spk), per_spk)
    centre, noise = rng.standard_normal((n_spk, 16)), rng.standard_normal((len(spk), 16))
    utts = [f"s{s:03d}-{i:03d}" for i, s in enumerate(spk)]
    layers = []
    for layer, sep in enumerate(seps):
        x = centre[spk] * sep + noise
        if noise_of is not None:
            x = x + np.random.default_rng(100 + layer).standard_normal(x.shape) * noise_of[layer]
        layers.append(torch.tensor(x))
    res = P.probe_layers("syn", utts, layers, {u: f"s{s:03d}" for u, s in zip(utts, spk)}, out / "utt2spk",
                         kinds=("linear",), epochs=20, num_nontarget=5000, num_samples=300)
    P.write_probe_dir(out, res)
    return out


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("power")
    a = _probe_dir(tmp / "sys_a" / "probe_syn")
    b = _probe_dir(tmp / "sys_b" / "probe_syn", noise_of=(0.3, 0.3))  # A's vectors + a little noise: correlated
    return a, b


def test_half_width_shrinks_like_one_over_sqrt_n_and_matches_the_probe_table(dirs):
    a, _ = dirs
    res = P.eer_power(a, subsets=10, num_samples=300)
    assert res.sizes == [5, 10, 20, 40] and res.set_speakers == 40 and res.fit_sizes == [10, 20, 40]
    rows = P.read_tsv(a / "probe.tsv")
    for layer in (0, 1):
        hw = [res.half_width[(layer, n)][0] for n in res.sizes]
        assert all(x > y for x, y in zip(hw, hw[1:]))  # more speakers, a narrower interval
        # the whole set: the interval of probe.tsv itself (same draws), to its printed rounding
        assert hw[-1] == pytest.approx((rows[layer].eer_ci[1] - rows[layer].eer_ci[0]) / 2, abs=0.01)
        assert -0.8 < res.exponent[layer] < -0.3  # about 1/sqrt(n)
        assert res.predicted(layer, 160) == pytest.approx(res.scale[layer] / math.sqrt(160))
        # speakers needed: the set's own half-width needs about the set's speakers; half of it four times as many
        need = res.needed(layer, hw[-1])
        assert 25 <= need <= 60
        assert res.needed(layer, hw[-1] / 2) == pytest.approx(4 * need, rel=0.05)
        assert res.needed(layer, 1.0, power=True) > res.needed(layer, 1.0) > res.needed(layer, 2.0)
    # the subsets are random draws of 10: their half-widths spread, the whole set's has one value
    assert res.half_width[(0, 10)][1] > 0 and res.half_width[(0, 10)][2] == 10 and res.half_width[(0, 40)][2] == 1


def test_paired_delta_of_correlated_systems_is_narrower_than_one_system(dirs):
    a, b = dirs
    single = P.eer_power(a, subsets=8, num_samples=300)
    paired = P.eer_power(a, b, subsets=8, num_samples=300)
    assert paired.paired and not single.paired
    for layer in (0, 1):
        for n in paired.sizes:
            assert paired.half_width[(layer, n)][0] < single.half_width[(layer, n)][0]
    # and the whole-set paired half-width is the paired comparison's own interval
    d = P.compare_probe_dirs(a, b, num_samples=300)
    assert paired.half_width[(1, 40)][0] == pytest.approx((d[1].eer[1][1] - d[1].eer[1][0]) / 2, abs=1e-9)


def test_identical_systems_need_no_speakers_and_print_n_a(dirs):
    a, _ = dirs
    res = P.eer_power(a, a, subsets=3, num_samples=100)  # Δ of a system with itself: an interval of no width
    assert res.half_width[(0, 40)][0] == 0.0 and math.isnan(res.needed(0, 1.0))
    md, _, need = P.power_tables(res, deltas=(1.0,))
    assert "| 1 | n/a / n/a | n/a / n/a |" in md and "\tn/a\tn/a\t" in need


def test_cli_writes_the_tables_and_refuses_bad_input(dirs, tmp_path, capsys):
    a, b = dirs
    probe_bin.main(["--power", str(a), str(b), "--power-subsets", "4", "--num-samples", "200",
                    "--deltas", "1", "3"])
    out_dir = b / "power_vs_sys_a"
    md = (out_dir / "power.md").read_text()
    assert md == capsys.readouterr().out.split("wrote ")[0]
    assert "| 40 (all) |" in md and "| 80 (extrapolated: c/√n) |" in md and "NOT measured" in md and "fitted exponent" in md and "| 3 |" in md
    tsv = [line.split("\t") for line in (out_dir / "power.tsv").read_text().splitlines()]
    assert tsv[0] == ["layer", "speakers", "source", "subsets", "half_width", "half_width_sd"]
    assert {(r[0], r[1], r[2]) for r in tsv[1:]} >= {("0", "5", "subsets"), ("1", "40", "all"), ("1", "320", "extrapolated")}
    need = [line.split("\t") for line in (out_dir / "power_needed.tsv").read_text().splitlines()]
    assert len(need) == 1 + 2 * 2 and all(int(r[2]) <= int(r[3]) for r in need[1:])  # 80 % power needs more
    assert (out_dir / "probe.record.json").exists() and not (a / "power").exists()
    # fewer than 5 speakers: the speaker bootstrap is n/a, so is its power
    small = _probe_dir(tmp_path / "small" / "probe_syn", n_spk=4)
    with pytest.raises(SystemExit):
        probe_bin.main(["--power", str(small)])
    assert "ERROR:" in capsys.readouterr().err
    with pytest.raises(DataError, match="4 test speakers; a speaker-bootstrap power table needs at least 5"):
        P.eer_power(small)
    other = _probe_dir(tmp_path / "other" / "probe_syn", n_spk=30)  # other speakers: other trials, no pairing
    with pytest.raises(DataError, match="other trials than"):
        P.eer_power(a, other)
    with pytest.raises(DataError, match="speaker count 50 is outside 5..40"):
        P.eer_power(a, sizes=[10, 50])
    with pytest.raises(SystemExit):
        probe_bin.main(["--power", str(tmp_path)])  # not a probe dir
    assert "trials.tsv: does not exist" in capsys.readouterr().err
