"""Kaldi's data utilities under utils/ (utt2spk_to_spk2utt.pl, spk2utt_to_utt2spk.pl, filter_scp.pl,
combine_data.sh, copy_data_dir.sh, data/get_utt2dur.sh, perturb_data_dir_speed.sh), run as recipes run
them: the real scripts, through bash and perl, on data dirs with real audio."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from asr_gr.data.audio import iter_utterances, load_audio
from asr_gr.data.kaldi_dir import read_table, validate_data_dir

ROOT = Path(__file__).resolve().parents[1]
UTILS = ROOT / "utils"
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           LC_ALL="C")
SR = 16000


def run(args, cwd=None, stdin=None, check=True):
    """Run a script of utils/ (args[0] relative to utils/) with the toolkit's python first on PATH."""
    cmd = [str(UTILS / args[0]), *[str(a) for a in args[1:]]]
    p = subprocess.run(cmd, cwd=cwd or ROOT, env=ENV, input=stdin, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def fails(args, **kw):
    p = run(args, check=False, **kw)
    assert p.returncode != 0, f"{args} should have failed:\n{p.stdout}"
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(lines) == 1, p.stderr
    return lines[0]


def tone(n: int, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def write_wav(path: Path, n: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(n, 300 + 50 * seed, seed), SR, subtype="PCM_16")
    return path


def write_dir(d: Path, **tables) -> Path:
    """A data dir from {name: "line\\nline"}; spk2utt from utt2spk unless given."""
    d.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (d / name.replace("wav_scp", "wav.scp").replace("feats_scp", "feats.scp")).write_text(text.strip() + "\n")
    if "spk2utt" not in tables:
        (d / "spk2utt").write_text(run(["utt2spk_to_spk2utt.pl", d / "utt2spk"]).stdout)
    return d


def lines(path: Path) -> list[str]:
    return Path(path).read_text().splitlines()


# ------------------------------------------------------------------------------------ perl converters

def test_utt2spk_to_spk2utt_groups_speakers_in_first_seen_order(tmp_path):
    # stdin: speakers in the order first seen, each one's utterances in input order
    out = run(["utt2spk_to_spk2utt.pl"], stdin="u3 B\nu1 A\nu2 B\nu0 C\n").stdout
    assert out == "B u3 u2\nA u1\nC u0\n"
    # several files are one input; a sorted utt2spk gives Kaldi's sorted spk2utt
    (tmp_path / "a").write_text("a1 s1\na2 s2\n")
    (tmp_path / "b").write_text("b1 s1\n")
    assert run(["utt2spk_to_spk2utt.pl", tmp_path / "a", tmp_path / "b"]).stdout == "s1 a1 b1\ns2 a2\n"
    # errors name the file and its own line number
    (tmp_path / "bad").write_text("x1 s1\nx2 s1 extra\n")
    err = fails(["utt2spk_to_spk2utt.pl", tmp_path / "a", tmp_path / "bad"])
    assert err == f"ERROR: {tmp_path / 'bad'}:2: expected 'utterance speaker' (2 fields), got 3 fields"
    err = fails(["utt2spk_to_spk2utt.pl"], stdin="u1 A\nu1 B\n")
    assert err == "ERROR: <stdin>:2: utterance 'u1' is given again (first at <stdin>:1)"


def test_spk2utt_to_utt2spk_is_the_inverse(tmp_path):
    assert run(["spk2utt_to_utt2spk.pl"], stdin="B u3 u2\nA u1\n").stdout == "u3 B\nu2 B\nu1 A\n"
    u2s = "a1 s1\na2 s2\nb1 s1\n"
    (tmp_path / "utt2spk").write_text(u2s)
    spk2utt = run(["utt2spk_to_spk2utt.pl", tmp_path / "utt2spk"]).stdout
    (tmp_path / "spk2utt").write_text(spk2utt)
    back = run(["spk2utt_to_utt2spk.pl", tmp_path / "spk2utt"]).stdout
    assert sorted(back.splitlines()) == sorted(u2s.splitlines())
    err = fails(["spk2utt_to_utt2spk.pl"], stdin="A u1\nB\n")
    assert err == "ERROR: <stdin>:2: speaker 'B' has no utterance; expected 'speaker utt1 utt2 ...'"


def test_filter_scp_keeps_or_excludes_lines_by_field(tmp_path):
    ids = tmp_path / "ids"
    ids.write_text("a extra fields are ignored\nc\n")
    scp = tmp_path / "in.scp"
    scp.write_text("c\t/x/c.wav\nb /x/b.wav\na  /x/a.wav |\n")  # order and whitespace of in.scp kept
    assert run(["filter_scp.pl", ids, scp]).stdout == "c\t/x/c.wav\na  /x/a.wav |\n"
    assert run(["filter_scp.pl", "--exclude", ids, scp]).stdout == "b /x/b.wav\n"
    # -f N filters on field N (from 1), e.g. segments by recording; standard input without in.scp
    segs = "u1 a 0 1\nu2 b 0 1\nu3 c 1 2\n"
    assert run(["filter_scp.pl", "-f", "2", ids], stdin=segs).stdout == "u1 a 0 1\nu3 c 1 2\n"
    assert run(["filter_scp.pl", "--exclude", "-f", "2", ids, "-"], stdin=segs).stdout == "u2 b 0 1\n"
    err = fails(["filter_scp.pl", "-f", "3", ids], stdin="u1 a 0\nu2 b\n")
    assert err == "ERROR: <stdin>:2: has 2 field(s); cannot filter on field 3"
    assert "cannot open the id list" in fails(["filter_scp.pl", tmp_path / "nope", scp])


# ------------------------------------------------------------------------------------ get_utt2dur

def test_get_utt2dur_from_headers_pipes_arks_segments_and_feats(tmp_path):
    import kaldiio

    a, b = write_wav(tmp_path / "a.wav", 16000), write_wav(tmp_path / "b.wav", 12000, 1)
    kaldiio.save_ark(str(tmp_path / "c.ark"), {"u3": (SR, (tone(4000) * 32767).astype(np.int16))},
                     scp=str(tmp_path / "c.scp"))
    ark_entry = read_table(tmp_path / "c.scp")["u3"]
    d = write_dir(tmp_path / "d", wav_scp=f"u1 {a}\nu2 cat {b} |\nu3 {ark_entry}",
                  utt2spk="u1 s\nu2 s\nu3 s")
    p = run(["data/get_utt2dur.sh", "--nj", "2", d])
    assert "getting durations from wave files" in p.stdout
    assert lines(d / "utt2dur") == ["u1 1", "u2 0.75", "u3 0.25"]
    # present with utt2spk's utterances: not recomputed (Kaldi's message)
    (d / "utt2dur").write_text("u1 9\nu2 9\nu3 9\n")
    assert "already exists with the expected length" in run(["data/get_utt2dur.sh", d]).stdout
    assert lines(d / "utt2dur")[0] == "u1 9"
    (d / "utt2dur").unlink()
    run(["data/get_utt2dur.sh", "--read-entire-file", "true", d])
    assert lines(d / "utt2dur") == ["u1 1", "u2 0.75", "u3 0.25"]

    # segments: end - start; -1 is the recording's end
    s = write_dir(tmp_path / "s", wav_scp=f"r1 {a}", segments="x1 r1 0.10 0.85\nx2 r1 0.5 -1",
                  utt2spk="x1 s\nx2 s")
    run(["data/get_utt2dur.sh", s])
    assert lines(s / "utt2dur") == ["x1 0.75", "x2 0.5"]

    # no audio: (frames + 1.5) * frame shift, the frame shift of DIR/frame_shift
    f = write_dir(tmp_path / "f", feats_scp=f"u1 {tmp_path}/x.ark:10", utt2num_frames="u1 98", utt2spk="u1 s")
    (f / "frame_shift").write_text("0.02\n")
    run(["data/get_utt2dur.sh", f])
    assert lines(f / "utt2dur") == ["u1 1.99"]

    # an unreadable entry: one line naming wav.scp's line
    bad = write_dir(tmp_path / "bad", wav_scp=f"u1 {a}\nu2 {tmp_path}/missing.wav", utt2spk="u1 s\nu2 s")
    err = fails(["data/get_utt2dur.sh", bad])
    assert err == f"ERROR: {bad}/wav.scp:2: audio file '{tmp_path}/missing.wav' does not exist"
    assert not (bad / "utt2dur").exists()


# ------------------------------------------------------------------------------------ combine_data

def _two_sources(tmp_path):
    a_wav, b_wav = write_wav(tmp_path / "rec1.wav", 32000), write_wav(tmp_path / "b1.wav", 8000, 2)
    a = write_dir(tmp_path / "a", wav_scp=f"rec1 {a_wav}", segments="a-1 rec1 0 0.9\na-2 rec1 1.0 2.0",
                  utt2spk="a-1 spkA\na-2 spkA", text="a-1 HELLO\na-2 WORLD", spk2gender="spkA f",
                  utt2dur="a-1 0.9\na-2 1")
    b = write_dir(tmp_path / "b", wav_scp=f"b-1 {b_wav}", utt2spk="b-1 spkB", text="b-1 AGAIN",
                  utt2dur="b-1 0.5")
    return a, b


def test_combine_data_concatenates_tables_and_creates_missing_segments(tmp_path):
    a, b = _two_sources(tmp_path)
    dest = tmp_path / "all"
    p = run(["combine_data.sh", dest, a, b])
    assert "combine_data.sh: combined text" in p.stdout and "kept 3 of 3 utterances" in p.stdout
    assert f"**not combining spk2gender as it does not exist everywhere** (missing from {b})" in p.stderr
    assert not (dest / "spk2gender").exists()
    assert lines(dest / "utt2spk") == ["a-1 spkA", "a-2 spkA", "b-1 spkB"]
    assert lines(dest / "spk2utt") == ["spkA a-1 a-2", "spkB b-1"]
    assert lines(dest / "text") == ["a-1 HELLO", "a-2 WORLD", "b-1 AGAIN"]
    # b had no segments: its utterance is a recording of its own, "utt utt 0 duration"
    assert lines(dest / "segments") == ["a-1 rec1 0 0.9", "a-2 rec1 1.0 2.0", "b-1 b-1 0 0.5"]
    assert [ln.split()[0] for ln in lines(dest / "wav.scp")] == ["b-1", "rec1"]
    assert validate_data_dir(dest) == []
    got = {u: len(x) for u, x, _ in iter_utterances(dest)}
    assert got == {"a-1": 14400, "a-2": 16000, "b-1": 8000}

    # a rerun into the same dest leaves nothing of the first (here: segments)
    p = run(["combine_data.sh", dest, b, b])
    assert "1 utterance(s) are in more than one source (with the same lines everywhere: kept once)" in p.stderr
    assert not (dest / "segments").exists() and lines(dest / "utt2spk") == ["b-1 spkB"]
    run(["combine_data.sh", "--skip-fix", "true", tmp_path / "nofix", b])
    assert not (tmp_path / "nofix" / ".backup").exists()  # fix_data_dir did not run
    # a source with neither segments nor utt2dur: its durations are read from the audio
    (b / "utt2dur").unlink()
    p = run(["combine_data.sh", tmp_path / "all2", a, b])
    assert lines(tmp_path / "all2" / "segments")[-1] == "b-1 b-1 0 0.5"
    assert "**not combining utt2dur as it does not exist everywhere**" in p.stderr


def test_combine_data_refuses_disagreeing_sources(tmp_path):
    a, b = _two_sources(tmp_path)
    (b / "text").write_text("b-1 AGAIN\na-2 OTHER WORDS\n")
    (b / "utt2spk").write_text("a-2 spkA\nb-1 spkB\n")
    err = fails(["combine_data.sh", tmp_path / "x", a, b])
    assert err.startswith(f"ERROR: {b}/")
    assert ":2: " in err and f"in {a}/" in err and "'a-2'" in err
    assert not (tmp_path / "x" / "utt2spk").exists()
    assert "also one of the source" in fails(["combine_data.sh", a, a, b])
    assert fails(["combine_data.sh", "--extra-files", "utt2lang", tmp_path / "y", a, b]) == \
        f"ERROR: {a}/utt2lang: file does not exist (it is one of --extra-files, which every source must have)"
    assert "unknown option '--no-such'" in fails(["combine_data.sh", "--no-such", "1", tmp_path / "y", a])


# ------------------------------------------------------------------------------------ copy_data_dir

def test_copy_data_dir_renames_utterances_and_speakers_everywhere(tmp_path):
    a, _ = _two_sources(tmp_path)
    (a / "cmvn.scp").write_text(f"spkA {tmp_path}/cmvn.ark:5\n")
    (a / "feats.scp").write_text(f"a-1 {tmp_path}/f.ark:5\na-2 {tmp_path}/f.ark:99\n")
    (a / "frame_shift").write_text("0.01\n")
    dest = tmp_path / "copy"
    dest.mkdir()
    (dest / "utt2lang").write_text("old stale\n")
    p = run(["copy_data_dir.sh", "--utt-prefix", "1-", "--utt-suffix=-x", "--spk_prefix", "1-", "--spk-suffix", "-y",
             "--validate-opts", "--no-feats", a, dest])
    assert "copied data from" in p.stdout and p.stdout.rstrip().endswith(f"{dest}: OK")
    assert lines(dest / "utt2spk") == ["1-a-1-x 1-spkA-y", "1-a-2-x 1-spkA-y"]
    assert lines(dest / "spk2utt") == ["1-spkA-y 1-a-1-x 1-a-2-x"]
    assert lines(dest / "text") == ["1-a-1-x HELLO", "1-a-2-x WORLD"]
    assert lines(dest / "segments") == ["1-a-1-x rec1 0 0.9", "1-a-2-x rec1 1.0 2.0"]  # recordings kept
    assert lines(dest / "wav.scp") == lines(a / "wav.scp")
    assert lines(dest / "utt2dur") == ["1-a-1-x 0.9", "1-a-2-x 1"]
    assert lines(dest / "spk2gender") == ["1-spkA-y f"]
    assert lines(dest / "cmvn.scp") == [f"1-spkA-y {tmp_path}/cmvn.ark:5"]
    assert lines(dest / "feats.scp")[1] == f"1-a-2-x {tmp_path}/f.ark:99"
    assert lines(dest / "utt2uniq") == ["1-a-1-x a-1", "1-a-2-x a-2"]
    assert (dest / "frame_shift").read_text() == "0.01\n"
    assert (dest / ".backup" / "utt2lang").read_text() == "old stale\n" and not (dest / "utt2lang").exists()

    # without segments wav.scp is keyed by utterance and renamed; a speaker prefix alone: no utt2uniq
    b = tmp_path / "b"
    run(["copy_data_dir.sh", "--spk-prefix", "sp-", b, tmp_path / "b2"])
    assert lines(tmp_path / "b2" / "utt2spk") == ["b-1 sp-spkB"]
    run(["copy_data_dir.sh", "--utt-prefix", "p-", b, tmp_path / "b3"])
    assert lines(tmp_path / "b3" / "wav.scp") == [f"p-{ln}" for ln in lines(b / "wav.scp")]
    assert not (tmp_path / "b2" / "utt2uniq").exists()

    # a table naming an utterance utt2spk lacks: Kaldi's apply_map.pl fails; here the line is named
    (b / "text").write_text("b-1 AGAIN\nzz ORPHAN\n")
    err = fails(["copy_data_dir.sh", "--utt-prefix", "p-", b, tmp_path / "b4"])
    assert err == f"ERROR: {b}/text:2: utterance 'zz' is not in utt2spk; run utils/fix_data_dir.sh {b} first"


# ------------------------------------------------------------------------------------ perturb speed

def test_perturb_data_dir_speed_pipes_audio_through_the_speed_tool(tmp_path, monkeypatch):
    from asr_gr.features.perturb import speed_perturb

    monkeypatch.setenv("PATH", ENV["PATH"])  # the pipes run the toolkit's python
    a_wav, b_wav = write_wav(tmp_path / "a.wav", 16000), write_wav(tmp_path / "b.wav", 9600, 1)
    src = write_dir(tmp_path / "src", wav_scp=f"u1 {a_wav}\nu2 cat {b_wav} |", utt2spk="u1 s1\nu2 s2",
                    text="u1 ONE\nu2 TWO", spk2gender="s1 m\ns2 f")
    dest = tmp_path / "sp0.9"
    p = run(["perturb_data_dir_speed.sh", "0.9", src, dest])
    assert p.stdout.rstrip().endswith(f"{dest}: OK")
    assert lines(src / "utt2dur") == ["u1 1", "u2 0.6"]  # computed into src first, as Kaldi does
    assert lines(dest / "utt2spk") == ["sp0.9-u1 sp0.9-s1", "sp0.9-u2 sp0.9-s2"]
    assert lines(dest / "spk2utt") == ["sp0.9-s1 sp0.9-u1", "sp0.9-s2 sp0.9-u2"]
    assert lines(dest / "text") == ["sp0.9-u1 ONE", "sp0.9-u2 TWO"]
    assert lines(dest / "spk2gender") == ["sp0.9-s1 m", "sp0.9-s2 f"]
    assert lines(dest / "utt2uniq") == ["sp0.9-u1 u1", "sp0.9-u2 u2"]
    assert lines(dest / "utt2dur") == ["sp0.9-u1 1.11111", "sp0.9-u2 0.666667"]
    wav = read_table(dest / "wav.scp")
    assert wav["sp0.9-u1"] == f"python -m asr_gr.bin.data_utils speed 0.9 {a_wav} |"
    assert wav["sp0.9-u2"] == f"cat {b_wav} | python -m asr_gr.bin.data_utils speed 0.9 - |"
    # the pipes give what asr_gr's own speed perturbation (torchaudio) gives, 16-bit as the input
    for utt, path in (("sp0.9-u1", a_wav), ("sp0.9-u2", b_wav)):
        orig, _ = sf.read(str(path), dtype="float32")
        got, rate = load_audio(wav[utt], where=(dest / "wav.scp", 1))
        want = speed_perturb(orig, 0.9)
        assert rate == SR and got.shape == want.shape
        assert np.abs(got - want).max() <= 1.0 / 32768 + 1e-6
    assert fails(["perturb_data_dir_speed.sh", "fast", src, tmp_path / "x"]) == \
        "ERROR: speed factor must be a positive number (e.g. 0.9), got 'fast'"


def test_perturb_data_dir_speed_with_segments_renames_recordings_and_scales_times(tmp_path, monkeypatch):
    rec = write_wav(tmp_path / "rec.wav", 48000)
    src = write_dir(tmp_path / "src", wav_scp=f"rec1 {rec}", utt2spk="r-1 s\nr-2 s\nr-3 s",
                    segments="r-1 rec1 0.00 1.10\nr-2 rec1 1.10 2.50\nr-3 rec1 2.50 2.505",
                    reco2file_and_channel="rec1 rec 1", utt2dur="r-1 1.1\nr-2 1.4\nr-3 0.005")
    dest = tmp_path / "sp1.1"
    p = run(["perturb_data_dir_speed.sh", "1.1", src, dest])
    assert "1 segment(s) would last 0.01 s or less" in p.stderr  # r-3, dropped from every table
    assert lines(dest / "segments") == ["sp1.1-r-1 sp1.1-rec1 0.00 1.00", "sp1.1-r-2 sp1.1-rec1 1.00 2.27"]
    assert lines(dest / "utt2spk") == ["sp1.1-r-1 sp1.1-s", "sp1.1-r-2 sp1.1-s"]
    assert lines(dest / "utt2dur") == ["sp1.1-r-1 1", "sp1.1-r-2 1.27273"]
    assert lines(dest / "reco2file_and_channel") == ["sp1.1-rec1 rec 1"]
    assert lines(dest / "wav.scp") == [f"sp1.1-rec1 python -m asr_gr.bin.data_utils speed 1.1 {rec} |"]
    monkeypatch.setenv("PATH", ENV["PATH"])
    got = {u: len(x) for u, x, _ in iter_utterances(dest)}
    assert got == {"sp1.1-r-1": 16000, "sp1.1-r-2": 20320}


# ------------------------------------------------------------------------------------ a Kaldi recipe

DATA_PREP = r"""#!/usr/bin/env bash
# Kaldi-style data preparation: local/data_prep.sh <corpus-dir>
. ./path.sh || exit 1
set -e
corpus=$1

for part in part1 part2; do
  dir=data/$part
  mkdir -p $dir
  find $corpus/$part -name '*.wav' | sort | \
    awk '{n=$1; sub(/.*\//, "", n); sub(/\.wav$/, "", n); print n, $1}' > $dir/wav.scp
  awk '{split($1, a, "_"); print $1, a[1]}' $dir/wav.scp > $dir/utt2spk
  sort $corpus/$part/transcripts.txt > $dir/text
  utils/utt2spk_to_spk2utt.pl $dir/utt2spk > $dir/spk2utt
  utils/fix_data_dir.sh $dir
done

utils/combine_data.sh data/train data/part1 data/part2
utils/data/get_utt2dur.sh data/train

# 3-way speed perturbation, as Kaldi's perturb_data_dir_speed_3way.sh does it
utils/perturb_data_dir_speed.sh 0.9 data/train data/temp1
utils/perturb_data_dir_speed.sh 1.1 data/train data/temp2
utils/copy_data_dir.sh --spk-prefix sp1.0- --utt-prefix sp1.0- data/train data/temp0
utils/combine_data.sh data/train_sp data/temp0 data/temp1 data/temp2
rm -r data/temp0 data/temp1 data/temp2

# a dev list cut out of train with filter_scp.pl
head -n 2 data/train/utt2spk | awk '{print $1}' > data/dev.list
mkdir -p data/dev
for f in wav.scp text utt2spk; do
  utils/filter_scp.pl data/dev.list data/train/$f > data/dev/$f
done
utils/utt2spk_to_spk2utt.pl data/dev/utt2spk > data/dev/spk2utt
utils/spk2utt_to_utt2spk.pl data/dev/spk2utt | sort | cmp - data/dev/utt2spk

utils/validate_data_dir.sh --no-feats data/train_sp
utils/validate_data_dir.sh --no-feats data/dev
echo "data preparation succeeded"
"""


def test_a_kaldi_data_prep_runs_unchanged_and_its_perturbed_audio_featurizes(tmp_path, monkeypatch):
    from asr_gr.features.fbank import FbankConfig, compute_fbank_dir

    corpus = tmp_path / "corpus"
    sizes = {"part1": {"alice_01": 12000, "alice_02": 9000}, "part2": {"bob_01": 10000, "bob_02": 8000}}
    for i, (part, utts) in enumerate(sizes.items()):
        for j, (utt, n) in enumerate(utts.items()):
            write_wav(corpus / part / f"{utt}.wav", n, seed=2 * i + j)
        (corpus / part / "transcripts.txt").write_text("".join(f"{u} WORD {u[-1]}\n" for u in reversed(utts)))
    recipe = tmp_path / "egs" / "demo" / "s5"
    (recipe / "local").mkdir(parents=True)
    (recipe / "utils").symlink_to(UTILS)
    (recipe / "path.sh").write_text(f". {Path(sys.executable).parent}/activate 2>/dev/null || "
                                    f"export PATH={Path(sys.executable).parent}:$PATH\nexport LC_ALL=C\n")
    (recipe / "local" / "data_prep.sh").write_text(DATA_PREP)
    (recipe / "local" / "data_prep.sh").chmod(0o755)
    p = subprocess.run(["local/data_prep.sh", str(corpus)], cwd=recipe, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.rstrip().endswith("data preparation succeeded")

    data = recipe / "data"
    originals = {u: n for utts in sizes.values() for u, n in utts.items()}
    assert read_table(data / "train" / "utt2dur") == {u: f"{n / SR:.6g}" for u, n in originals.items()}
    u2s = read_table(data / "train_sp" / "utt2spk")
    assert len(u2s) == 12 and u2s["sp0.9-alice_01"] == "sp0.9-alice" and u2s["sp1.0-bob_02"] == "sp1.0-bob"
    assert read_table(data / "train_sp" / "text")["sp1.1-bob_01"] == "WORD 1"
    assert read_table(data / "dev" / "utt2spk") == {"alice_01": "alice", "alice_02": "alice"}
    u2d = {u: float(v) for u, v in read_table(data / "train_sp" / "utt2dur").items()}

    # asr_gr featurizes the perturbed dir (its wav.scp pipes run the speed tool)
    monkeypatch.setenv("PATH", ENV["PATH"])
    monkeypatch.chdir(recipe)
    dump = tmp_path / "dump"
    assert compute_fbank_dir(data / "train_sp", dump, FbankConfig(num_mel_bins=23), nj=1) == 12
    frames = {u: int(v) for u, v in read_table(dump / "utt2num_frames").items()}
    for utt, n in originals.items():
        for f in ("0.9", "1.0", "1.1"):
            sp = f"sp{f}-{utt}"
            samples = round(n / float(f))
            assert abs(u2d[sp] - samples / SR) < 1e-4  # utt2dur: the original's / factor
            assert abs(frames[sp] - (1 + (samples - 400) // 160)) <= 1  # the audio has that length
