"""fix_data_dir / subset_data_dir / split_data on data dirs as users bring them from Kaldi and ESPnet."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr_gr.bin import fix_data_dir as fix_cli
from asr_gr.bin import split_data as split_cli
from asr_gr.bin import subset_data_dir as subset_cli
from asr_gr.data.kaldi_dir import read_table, validate_data_dir, write_data_dir
from asr_gr.data.ops import fix_data_dir, split_data, subset_data_dir
from asr_gr.utils import DataError

ROOT = Path(__file__).resolve().parents[1]


def _good(root, sizes=(5, 3, 2, 1), name="data") -> Path:
    """Speakers s0.. with ``sizes`` utterances each; a valid, sorted data dir."""
    wav, u2s, text, gender = {}, {}, {}, {}
    for s, n in enumerate(sizes):
        for i in range(n):
            utt = f"s{s}-u{i}"
            wav[utt], u2s[utt], text[utt] = f"/audio/{utt}.wav", f"s{s}", f"WORD {i}"
        gender[f"s{s}"] = "mf"[s % 2]
    d = Path(root) / name
    write_data_dir(d, wav_scp=wav, utt2spk=u2s, text=text, spk2gender=gender)
    return d


def _segmented(root) -> Path:
    """Two recordings cut into utterances; wav.scp keyed by recording."""
    d = Path(root) / "seg"
    d.mkdir()
    (d / "wav.scp").write_text("recA /a.wav\nrecB /b.wav\nrecC /c.wav\n")
    (d / "segments").write_text("recA-1 recA 0 1\nrecA-2 recA 1 2\nrecB-1 recB 0 1\nrecC-1 recC 0 1\n")
    (d / "utt2spk").write_text("recA-1 x\nrecA-2 x\nrecB-1 y\nrecC-1 z\n")
    (d / "spk2utt").write_text("x recA-1 recA-2\ny recB-1\nz recC-1\n")
    (d / "text").write_text("recA-1 A\nrecA-2 B\nrecB-1 C\nrecC-1 D\n")
    return d


def _utts(d) -> list[str]:
    return list(read_table(Path(d) / "utt2spk"))


# --------------------------------------------------------------------------------------------- fix

def test_fix_keeps_n_of_m_and_writes_a_backup(tmp_path, capsys):
    d = _good(tmp_path)  # 11 utterances, speakers s0 (5) s1 (3) s2 (2) s3 (1)
    wav = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("\n".join(reversed(wav)) + "\n\n")  # unsorted, a blank line at the end
    text = (d / "text").read_text().splitlines()
    text = [t for t in text if not t.startswith("s1-u0 ")]  # missing transcript
    text = [("s3-u0" if t.startswith("s3-u0 ") else t) for t in text]  # empty transcript: s3's only one
    text.append("zz-extra ORPHAN")  # not in utt2spk
    original_text = "\n".join(text) + "\n"
    (d / "text").write_text(original_text)
    (d / "spk2utt").write_text("s0 s0-u0\n")  # stale

    assert validate_data_dir(d)  # broken before
    assert fix_cli.main([str(d)]) is None
    out, err = capsys.readouterr()
    assert "fix_data_dir: kept 9 of 11 utterances" in out
    assert "missing from text (first: 's1-u0')" in err and "empty transcript" in err

    assert validate_data_dir(d) == []
    assert "s1-u0" not in _utts(d) and "s3-u0" not in _utts(d)
    assert list(read_table(d / "wav.scp")) == sorted(_utts(d))
    assert "s3" not in read_table(d / "spk2gender")  # speaker with no utterance left
    assert read_table(d / "spk2utt")["s1"] == "s1-u1 s1-u2"
    assert (d / ".backup" / "text").read_text() == original_text
    assert fix_data_dir(d) == (9, 9)  # idempotent


def test_fix_with_segments_drops_utterances_of_missing_recordings_and_unused_recordings(tmp_path):
    d = _segmented(tmp_path)
    (d / "wav.scp").write_text("recA /a.wav\nrecC /c.wav\nrecZ /unused.wav\n")
    assert fix_data_dir(d) == (3, 4)
    assert _utts(d) == ["recA-1", "recA-2", "recC-1"]
    assert list(read_table(d / "wav.scp")) == ["recA", "recC"]
    assert validate_data_dir(d) == []


def test_fix_refuses_conflicting_duplicates_and_leaves_the_dir_alone(tmp_path):
    d = _good(tmp_path)
    (d / "text").write_text((d / "text").read_text() + "s0-u0 A DIFFERENT ONE\n")
    before = (d / "text").read_text()
    with pytest.raises(DataError, match=r"text:12: key 's0-u0' repeats line 1 with a different value"):
        fix_data_dir(d)
    assert (d / "text").read_text() == before


# ------------------------------------------------------------------------------------------ subset

def test_subset_first_random_and_lists(tmp_path, capsys):
    d = _good(tmp_path)
    first = subset_data_dir(d, tmp_path / "first", first=3)
    assert first == 3 and _utts(tmp_path / "first") == sorted(_utts(d))[:3]

    subset_data_dir(d, tmp_path / "r1", random_n=4, seed=1)
    subset_data_dir(d, tmp_path / "r1b", random_n=4, seed=1)
    assert len(_utts(tmp_path / "r1")) == 4 and _utts(tmp_path / "r1") == _utts(tmp_path / "r1b")

    (tmp_path / "spk.list").write_text("s1\ns3\n")
    subset_cli.main(["--spk-list", str(tmp_path / "spk.list"), str(d), str(tmp_path / "spk")])
    assert "subset_data_dir: wrote 4 utterances" in capsys.readouterr().out
    assert set(read_table(tmp_path / "spk" / "utt2spk").values()) == {"s1", "s3"}
    assert list(read_table(tmp_path / "spk" / "spk2gender")) == ["s1", "s3"]

    (tmp_path / "utt.list").write_text("s2-u1 extra fields\nnot-here\ns0-u4\n")
    subset_cli.main(["--utt-list", str(tmp_path / "utt.list"), str(d), str(tmp_path / "ul")])
    assert "1 listed utterance(s) not in" in capsys.readouterr().err
    assert _utts(tmp_path / "ul") == ["s0-u4", "s2-u1"]

    for sub in ("first", "r1", "spk", "ul"):
        assert validate_data_dir(tmp_path / sub) == [], sub


def test_subset_errors(tmp_path, capsys):
    d = _good(tmp_path)
    with pytest.raises(DataError, match="cannot take 50 utterances: this data dir has only 11"):
        subset_data_dir(d, tmp_path / "x", first=50)
    (tmp_path / "none.list").write_text("nobody\n")
    with pytest.raises(SystemExit):
        subset_cli.main(["--spk-list", str(tmp_path / "none.list"), str(d), str(tmp_path / "y")])
    assert "ERROR: " in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_subset_with_segments_keeps_only_the_needed_recordings(tmp_path):
    d = _segmented(tmp_path)
    subset_data_dir(d, tmp_path / "sub", utt_list=["recA-2", "recC-1"])
    sub = tmp_path / "sub"
    assert list(read_table(sub / "wav.scp")) == ["recA", "recC"]
    assert list(read_table(sub / "segments")) == ["recA-2", "recC-1"]
    assert validate_data_dir(sub) == []


# ------------------------------------------------------------------------------------------ split

def test_split_by_speaker_never_splits_a_speaker_and_covers_every_utterance_once(tmp_path):
    sizes = (7, 5, 4, 3, 3, 2, 1, 1)
    d = _good(tmp_path, sizes)
    jobs = split_data(d, 3)
    assert jobs == [d / "split3" / str(j) for j in (1, 2, 3)]
    seen, spk_job = [], {}
    for j, job in enumerate(jobs):
        assert validate_data_dir(job) == []
        for utt, spk in read_table(job / "utt2spk").items():
            seen.append(utt)
            assert spk_job.setdefault(spk, j) == j, f"speaker {spk} is in two jobs"
    assert sorted(seen) == sorted(_utts(d))  # every utterance exactly once
    counts = [len(_utts(job)) for job in jobs]
    assert max(counts) - min(counts) <= 1  # 26 utterances: 9 9 8


def test_split_by_utterance_and_errors(tmp_path):
    d = _good(tmp_path)  # 4 speakers, 11 utterances
    jobs = split_data(d, 5, by="utterance")
    assert jobs[0].parent.name == "split5utt"
    assert [len(_utts(j)) for j in jobs] == [3, 2, 2, 2, 2]
    assert sum((_utts(j) for j in jobs), []) == _utts(d)
    with pytest.raises(DataError, match="cannot split 4 speakers into 5 jobs"):
        split_data(d, 5)
    with pytest.raises(DataError, match="cannot split 11 utterances into 12 jobs"):
        split_data(d, 12, by="utterance")


def test_split_is_skipped_when_up_to_date_and_redone_when_the_source_changes(tmp_path, capsys):
    d = _good(tmp_path)
    for f in d.iterdir():  # clocks tick coarsely: make the source clearly older than the split
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns - 10**10))
    split_cli.main([str(d), "2"])
    assert "split_data: wrote 2 jobs" in capsys.readouterr().out
    stamp = (d / "split2" / "1" / "text").stat().st_mtime_ns
    split_cli.main([str(d), "2"])
    assert "is up to date" in capsys.readouterr().out
    assert (d / "split2" / "1" / "text").stat().st_mtime_ns == stamp
    # A fix after the split (here: one utterance fewer) makes the split stale.
    (d / "text").write_text("".join(l for l in (d / "text").read_text().splitlines(True) if "s0-u0" not in l))
    fix_data_dir(d)
    split_data(d, 2)
    assert "s0-u0" not in sum((_utts(j) for j in (d / "split2" / "1", d / "split2" / "2")), [])


def test_shell_wrappers_run_the_tools(tmp_path):
    d = _good(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run([str(ROOT / "utils" / "split_data.sh"), "--per-utt", str(d), "2"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (d / "split2utt" / "2" / "utt2spk").exists()
    r = subprocess.run([str(ROOT / "utils" / "split_data.sh"), str(d), "9"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith(f"ERROR: {d}/utt2spk: cannot split 4 speakers")


# ------------------------------------------------------------------------------------------ validate

def test_validate_checks_segments_and_utt2spkid(tmp_path):
    d = _segmented(tmp_path)
    assert validate_data_dir(d) == []  # wav.scp keyed by recording is fine with segments
    (d / "segments").write_text("recA-1 recA 0 1\nrecA-2 recA 1 2\nrecB-1 recQ 0 1\nrecC-1 recC 0 1\n")
    assert any(e.endswith("segments:3: recording 'recQ' of utterance 'recB-1' is not in wav.scp")
               for e in validate_data_dir(d))
    (d / "segments").write_text("recA-1 recA 0 1\nrecA-2 recA 2 1\nrecB-1 recB 0 1\nrecC-1 recC 0 1\n")
    assert any("segments:2: start time 2 is not before end time 1" in e for e in validate_data_dir(d))
    (d / "segments").write_text("recA-1 recA 0 1\nrecB-1 recB 0 1\nrecC-1 recC 0 1\n")
    assert any("utterance 'recA-2' (in utt2spk) is missing here" in e for e in validate_data_dir(d))

    g = _good(tmp_path, (2, 1))
    (g / "utt2spkid").write_text("s0-u0 reader0\ns0-u1 reader1\ns1-u0 reader1\n")
    assert any("utt2spkid:2: utterance 's0-u1' has speaker id 'reader1' but 's0-u0' of the same utt2spk "
               "speaker 's0' has 'reader0'" in e for e in validate_data_dir(g))
