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
