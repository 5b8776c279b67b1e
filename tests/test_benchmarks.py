"""The benchmark scripts still run (on a tiny input): they are measurements, so only their table is checked."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fbank_benchmark_prints_every_row(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fbank.py"), "--seconds", "4", "--repeat", "1",
                        "--replicate", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = re.findall(r"^\| (asr_gr batched|torchaudio per-utt|kaldi-native-fbank|stage 2 --nj \d) +\| +(\d) \|"
                      r" +[\d.]+ \| +(\d+) \|", p.stdout, flags=re.M)
    assert len(rows) == 8, p.stdout
    assert all(int(rt) > 0 for _, _, rt in rows)
    assert {name for name, _, _ in rows} >= {"stage 2 --nj 1", "stage 2 --nj 2"}


def test_train_step_benchmark_has_a_row_per_precision(tmp_path):
    # a small model: bf16 convolutions are slow on CPUs without AVX512-BF16
    (tmp_path / "small.yaml").write_text("encoder_conf: {channels: [32, 32], kernels: [5, 3], stride: 3}\n"
                                         "aux_conf: {spk_layer: 1, hidden: 16}\nbatch_frames: 3000\n")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--max-batches", "2",
                        "--threads", "1", "--precision", "fp32", "bf16", "--config", str(tmp_path / "small.yaml")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = re.findall(r"^\| (fp32|bf16) +\| +([\d.]+) \| +([\d.]+) \| +([\d.]+) \| +([\d.]+) \|", p.stdout, flags=re.M)
    assert [r[0] for r in rows] == ["fp32", "bf16"], p.stdout
    assert all(float(r[2]) > 0 for r in rows)
    assert "speed-up of bf16 over fp32" in p.stdout


def test_gpu_train_benchmark_runs_on_the_cpu(tmp_path):
    """The GPU benchmark's smoke test: the LibriSpeech config, synthetic features, a few CPU steps."""
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_train.py"), "--device", "cpu", "--steps", "3",
                        "--utts", "3", "--batch-frames", "1500", "--no-warmup", "--num-workers", "1",
                        "--precision", "fp32"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith("data: synthetic LibriSpeech-like features (3 utterances")
    row = re.search(r"^\| +cpu \| +fp32 \| +1 \| +1500 \| +(\d+) \| +([\d.]+) \| +([\d.]+) \| +([\d.]+) % \| +- \|",
                    p.stdout, flags=re.M)
    assert row, p.stdout
    steps, sps, audio, wait = int(row[1]), float(row[2]), float(row[3]), float(row[4])
    assert steps >= 3 and sps > 0 and audio > 0 and 0 <= wait < 100


def _precision_run(exp, tag, char_errors, word_errors, seconds):
    """An exp dir as precision_runs.sh leaves it: a scored greedy decode of 'test' and metrics.jsonl."""
    import json

    sd = exp / tag / "decode_test_greedy" / "score"
    sd.mkdir(parents=True)
    per_utt = {f"s{i % 6}-u{i:02d}": {"spk": f"s{i % 6}", "ref_words": 4, "errors": word_errors[i],
                                        "ref_chars": 20, "char_errors": char_errors[i]} for i in range(len(char_errors))}
    (sd / "per_utt.json").write_text(json.dumps(per_utt))
    (exp / tag / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 10, "train_seconds": 5.0}) + "\n" +
                                             json.dumps({"epoch": 2, "step": 20, "train_seconds": seconds}) + "\n")


def test_precision_summary_tables_and_paired_difference(tmp_path):
    exp = tmp_path / "exp"
    n = 30
    _precision_run(exp, "prec_fp32_s1", [2] * n, [1] * n, 16.0)
    _precision_run(exp, "prec_fp32_s2", [2] * n, [1] * n, 16.0)
    _precision_run(exp, "prec_bf16_s1", [3] * n, [1] * n, 8.0)  # one char error more per utterance: +5 CER
    (tmp_path / "times.txt").write_text("stages 1-2: 9 s\nprec_fp32_s1 train_s 20 decode_s 3\n"
                                        "prec_fp32_s2 train_s 21 decode_s 3\nprec_bf16_s1 train_s 11 decode_s 3\n")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "precision_summary.py"), "--exp", str(exp),
                        "--times", str(tmp_path / "times.txt"), "--runs", "fp32:1", "fp32:2", "bf16:1", "bf16:2"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    assert "| fp32 | 1 | 10.00 [10.00, 10.00] | 25.00 [25.00, 25.00] | 20 | 20 | 0.800 |" in out
    assert "| bf16 | 1 | 15.00 [15.00, 15.00] | 25.00 [25.00, 25.00] | 20 | 11 | 0.400 |" in out
    assert "| bf16 | 2 | (no result: see prec_bf16_s2.train.log" in out  # a run that failed is named
    assert "| fp32 | 2 | 10.00 ± 0.00 | 25.00 ± 0.00 | 0.800 |" in out
    assert "| bf16 | +5.00 [+5.00, +5.00] [+5.00, +5.00] | +0.00 [+0.00, +0.00] [+0.00, +0.00] |" in out


def test_convergence_table_measures_each_step_against_its_base(tmp_path):
    """A step that halves every speaker's errors shows a negative Δ whose intervals exclude 0."""
    import json

    def score_dir(name, errors):
        d = tmp_path / name
        d.mkdir()
        per_utt = {f"s{s}-{u}": {"spk": f"s{s}", "ref_words": 10, "errors": errors, "ref_chars": 50,
                                 "char_errors": 2 * errors} for s in range(6) for u in range(5)}
        (d / "per_utt.json").write_text(json.dumps(per_utt))
        return d

    a, b = score_dir("a", 4), score_dir("b", 2)
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "convergence_table.py"), f"old={a}", f"new={b}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("| old") or ln.startswith("| new")]
    assert rows[0].startswith("| old | 16.00 [16.00, 16.00] | 40.00 [40.00, 40.00] | - |")
    assert "| new | 8.00 [8.00, 8.00] | 20.00 [20.00, 20.00] | old | -8.00 [-8.00, -8.00] [-8.00, -8.00] |" in rows[1]
