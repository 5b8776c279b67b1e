"""Bad input in the skeleton's stages: one clear line naming file:line and reason, no output left."""

import numpy as np
import pytest
import soundfile as sf

from asr_gr.bin import compute_fbank, tokenizer


def _data_dir(tmp_path, n=3):
    d = tmp_path / "data"
    d.mkdir()
    wav, text, u2s = [], [], []
    for i in range(n):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, (0.1 * np.random.default_rng(i).standard_normal(8000)).astype(np.float32), 16000)
        wav.append(f"spk-{i} {p}")
        text.append(f"spk-{i} HELLO WORLD")
        u2s.append(f"spk-{i} spk")
    (d / "wav.scp").write_text("\n".join(wav) + "\n")
    (d / "text").write_text("\n".join(text) + "\n")
    (d / "utt2spk").write_text("\n".join(u2s) + "\n")
    (d / "spk2utt").write_text("spk " + " ".join(f"spk-{i}" for i in range(n)) + "\n")
    return d


def _run(main, argv, capsys, max_lines=1):
    """Run an entry point that must fail; return its ERROR line(s) (one per problem found)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    err = capsys.readouterr().err
    errors = [ln[ln.index("ERROR"):] for ln in err.splitlines() if "ERROR" in ln]
    assert 1 <= len(errors) <= max_lines, err  # one clear line per problem (progress bars aside)
    return "\n".join(errors)


def test_good_dir_extracts(tmp_path):
    d = _data_dir(tmp_path)
    compute_fbank.main(["--data-dir", str(d), "--out-dir", str(tmp_path / "dump"), "--cmvn"])
    assert (tmp_path / "dump" / "feats.scp").read_text().count("\n") == 3
    assert (tmp_path / "dump" / "utt2num_frames").read_text().split("\n")[0] == "spk-0 48"
    assert (tmp_path / "dump" / "cmvn.ark").exists()


def test_utterance_missing_from_utt2spk(tmp_path, capsys):
    d = _data_dir(tmp_path)
    (d / "utt2spk").write_text("spk-0 spk\nspk-2 spk\n")
    (d / "spk2utt").write_text("spk spk-0 spk-2\n")
    err = _run(compute_fbank.main, ["--data-dir", str(d), "--out-dir", str(tmp_path / "dump")], capsys,
               max_lines=2)
    assert f"ERROR: {d}/wav.scp:2: utterance 'spk-1' is not in utt2spk" in err
    assert f"ERROR: {d}/text:2: utterance 'spk-1' is not in utt2spk" in err
    assert not (tmp_path / "dump" / "feats.scp").exists()


@pytest.mark.parametrize("content, reason", [
    (b"", "is empty (0 bytes)"),
    (b"this is not a RIFF file at all" * 10, "cannot read audio file"),
    (None, "does not exist"),
])
def test_unreadable_wav_names_the_wav_scp_line(tmp_path, capsys, content, reason):
    d = _data_dir(tmp_path)
    bad = tmp_path / "u1.wav"
    bad.unlink()
    if content is not None:
        bad.write_bytes(content)
    out = tmp_path / "dump"
    err = _run(compute_fbank.main, ["--data-dir", str(d), "--out-dir", str(out)], capsys)
    assert err.startswith(f"ERROR: {d}/wav.scp:2: ") and reason in err
    assert not (out / "feats.scp").exists() and not (out / "feats.ark").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_empty_transcript(tmp_path, capsys):
    d = _data_dir(tmp_path)
    (d / "text").write_text("spk-0 HELLO\nspk-1 \nspk-2 WORLD\n")
    err = _run(tokenizer.main, ["--text", str(d / "text"), "--out", str(tmp_path / "tokens.txt")], capsys)
    assert f"ERROR: {d}/text:2: utterance 'spk-1' has an empty transcript" in err
    assert not (tmp_path / "tokens.txt").exists()


def test_wrong_sample_rate_and_multichannel(tmp_path, capsys):
    d = _data_dir(tmp_path)
    sf.write(tmp_path / "u2.wav", np.zeros(8000, dtype=np.float32), 8000)
    err = _run(compute_fbank.main, ["--data-dir", str(d), "--out-dir", str(tmp_path / "dump")], capsys)
    assert "wav.scp:3: " in err and "is 8000 Hz; expected 16000 Hz" in err
    sf.write(tmp_path / "u2.wav", np.zeros((8000, 2), dtype=np.float32), 16000)
    err = _run(compute_fbank.main, ["--data-dir", str(d), "--out-dir", str(tmp_path / "dump")], capsys)
    assert "wav.scp:3: " in err and "has 2 channels; expected mono" in err
