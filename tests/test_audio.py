"""wav.scp entries as Kaldi/ESPnet write them: files of any format, pipes, ark:offset, segments."""

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from asr_gr.data.audio import iter_utterances, load_audio
from asr_gr.utils import DataError

SR = 16000


def _tone(seconds=1.0, sr=SR, seed=0) -> np.ndarray:
    """int16 samples that differ along the signal, so a wrong cut or offset shows."""
    n = int(seconds * sr)
    rng = np.random.default_rng(seed)
    return (np.sin(np.arange(n) * 0.01) * 8000 + rng.integers(-500, 500, n)).astype(np.int16)


def _wav(path, samples, sr=SR, **kw) -> Path:
    sf.write(path, samples, sr, **({"subtype": "PCM_16"} | kw))
    return Path(path)


def _dir(root, wav_scp: str, segments: str | None = None) -> Path:
    d = Path(root) / "data"
    d.mkdir()
    (d / "wav.scp").write_text(wav_scp)
    if segments is not None:
        (d / "segments").write_text(segments)
    return d


def test_pipe_entry_reads_the_commands_output(tmp_path):
    x = _tone()
    f = _wav(tmp_path / "a.wav", x)
    d = _dir(tmp_path, f"a cat {f} |\nb {f}\n")
    got = {u: s for u, s, sr in iter_utterances(d, sample_rate=SR)}
    assert np.array_equal(got["a"], got["b"])
    assert np.allclose(got["a"], x / 32768.0)


def test_failing_pipe_names_the_wav_scp_line_and_the_commands_message(tmp_path):
    f = _wav(tmp_path / "a.wav", _tone())
    d = _dir(tmp_path, f"a {f}\nb false |\nc echo no such recording >&2; exit 3 |\n")
    with pytest.raises(DataError, match=r"wav.scp:2: command 'false' failed with exit status 1"):
        list(iter_utterances(d))
    with pytest.raises(DataError, match=r"wav.scp:3: .*exit status 3: no such recording$"):
        list(iter_utterances(d, utts=["c"]))
    with pytest.raises(DataError, match=r"wav.scp:1: command 'true' wrote no audio"):
        load_audio("true |", where=(d / "wav.scp", 1))


def test_ark_offset_entries_written_by_kaldiio(tmp_path):
    audio = {"u1": _tone(0.5, seed=1), "u2": _tone(0.7, seed=2)}
    ark, scp = tmp_path / "wav.ark", tmp_path / "wav.scp"
    kaldiio.save_ark(str(ark), {u: (SR, x) for u, x in audio.items()}, scp=str(scp))
    d = _dir(tmp_path, scp.read_text())
    assert ":" in (d / "wav.scp").read_text().split()[1]  # path.ark:offset
    got = {u: s for u, s, _ in iter_utterances(d, sample_rate=SR)}
    for u, x in audio.items():
        assert got[u].dtype == np.float32 and np.allclose(got[u], x / 32768.0)


def test_ark_entry_that_holds_features_is_an_error(tmp_path):
    kaldiio.save_ark(str(tmp_path / "f.ark"), {"u1": np.zeros((5, 3), np.float32)}, scp=str(tmp_path / "f.scp"))
    d = _dir(tmp_path, (tmp_path / "f.scp").read_text())
    with pytest.raises(DataError, match=r"wav.scp:1: ark entry .* holds a matrix .*not audio"):
        list(iter_utterances(d))


def test_flac_file(tmp_path):
    x = _tone()
    f = _wav(tmp_path / "a.flac", x, format="FLAC")
    samples, sr = load_audio(str(f), sample_rate=SR)
    assert sr == SR and np.allclose(samples, x / 32768.0)


def test_segments_cut_recordings_and_each_recording_is_read_once(tmp_path):
    x = _tone(2.0)
    f = _wav(tmp_path / "rec.wav", x)
    count = tmp_path / "reads"
    d = _dir(tmp_path, f"rec1 echo x >> {count}; cat {f} |\n",
             "rec1-a rec1 0.00 0.50\nrec1-b rec1 0.50 1.25\nrec1-c rec1 1.25 -1\n")
    got = {u: s for u, s, _ in iter_utterances(d, sample_rate=SR)}
    assert list(got) == ["rec1-a", "rec1-b", "rec1-c"]
    assert np.allclose(got["rec1-a"], x[:8000] / 32768.0)
    assert np.allclose(got["rec1-b"], x[8000:20000] / 32768.0)
    assert np.allclose(got["rec1-c"], x[20000:] / 32768.0)  # end -1: to the end of the recording
    assert count.read_text().count("x") == 1


def test_segment_outside_its_recording_names_the_segments_line(tmp_path):
    f = _wav(tmp_path / "rec.wav", _tone(1.0))
    d = _dir(tmp_path, f"rec1 {f}\n", "u1 rec1 0.0 0.5\nu2 rec1 1.5 2.0\n")
    with pytest.raises(DataError, match=r"segments:2: segment of 'u2' starts at 1.5 s.*recording 'rec1' \(1.000 s\)"):
        list(iter_utterances(d))
    (d / "segments").write_text("u1 rec1 0.5 1.5\n")
    with pytest.raises(DataError, match=r"segments:1: segment of 'u1' ends at 1.5 s"):
        list(iter_utterances(d))
    (d / "segments").write_text("u1 rec1 0.5 1.01\n")  # within the tolerance for rounding: clipped
    assert len(next(iter_utterances(d))[1]) == 8000
    (d / "segments").write_text("u1 rec1 0.5 0.5\n")
    with pytest.raises(DataError, match=r"segments:1: start time 0.5 is not before end time 0.5"):
        list(iter_utterances(d))
    (d / "segments").write_text("u1 rec9 0.0 0.5\n")
    with pytest.raises(DataError, match=r"segments:1: recording 'rec9' of utterance 'u1' is not in"):
        list(iter_utterances(d))


def test_resampling_is_opt_in(tmp_path):
    f = _wav(tmp_path / "a.wav", _tone(1.0, sr=8000), sr=8000)
    d = _dir(tmp_path, f"a {f}\n")
    with pytest.raises(DataError, match=r"wav.scp:1: audio file .* is 8000 Hz; expected 16000 Hz"):
        list(iter_utterances(d, sample_rate=SR))
    utt, samples, sr = next(iter_utterances(d, sample_rate=SR, resample=True))
    assert sr == SR and samples.dtype == np.float32 and len(samples) == SR


def test_two_channel_file_is_an_error(tmp_path):
    f = _wav(tmp_path / "st.wav", np.stack([_tone(0.2), _tone(0.2, seed=1)], axis=1))
    d = _dir(tmp_path, f"a {f}\nb cat {f} |\n")
    with pytest.raises(DataError, match=r"wav.scp:1: audio file .* has 2 channels; expected mono"):
        list(iter_utterances(d))
    with pytest.raises(DataError, match=r"wav.scp:2: the output of command .* has 2 channels"):
        list(iter_utterances(d, utts=["b"]))
