import re

import pytest

from asr_gr.data.kaldi_dir import (read_table, read_text_file, speaker_labels, validate_data_dir,
                                   write_data_dir)
from asr_gr.utils import DataError


def _dir(tmp_path, **tables):
    d = tmp_path / "data"
    d.mkdir()
    for name, text in tables.items():
        (d / name.replace("_scp", ".scp")).write_bytes(text if isinstance(text, bytes) else text.encode())
    return d


GOOD = dict(wav_scp="a-1 /x/a1.wav\na-2 /x/a2.wav\nb-1 /x/b1.wav\n",
            text="a-1 HELLO\na-2 HELLO THERE\nb-1 YES\n",
            utt2spk="a-1 a\na-2 a\nb-1 b\n", spk2utt="a a-1 a-2\nb b-1\n")


def test_write_then_validate_round_trip(tmp_path):
    d = tmp_path / "d"
    write_data_dir(d, wav_scp={"b-1": "/b.wav", "a-1": "/a.wav"}, utt2spk={"b-1": "b", "a-1": "a"},
                   text={"a-1": "HI", "b-1": "NO"}, spk2gender={"a": "f", "b": "m"})
    assert validate_data_dir(d) == []
    assert list(read_table(d / "wav.scp")) == ["a-1", "b-1"]  # sorted in C order
    assert (d / "spk2utt").read_text() == "a a-1\nb b-1\n"


def test_good_dir_validates(tmp_path):
    assert validate_data_dir(_dir(tmp_path, **GOOD)) == []


@pytest.mark.parametrize("change, expect", [
    (dict(utt2spk="a-1 a\nb-1 b\n", spk2utt="a a-1\nb b-1\n"), r"wav.scp:2: utterance 'a-2' is not in utt2spk"),
    (dict(text="a-1 HELLO\na-2\nb-1 YES\n"), r"text:2: key 'a-2' has no value"),
    (dict(wav_scp="a-2 /x\na-1 /y\nb-1 /z\n"), r"wav.scp:2: not sorted in C order"),
    (dict(text="a-1 HELLO\na-1 AGAIN\nb-1 YES\n"), r"text:2: duplicate key 'a-1'"),
    (dict(text=b"a-1 HELLO\na-2 CAF\xe9\nb-1 YES\n"), r"text:2: not valid UTF-8"),
    (dict(spk2utt="a a-1\nb b-1\n"), r"spk2utt: does not match utt2spk"),
])
def test_validation_names_file_line_and_reason(tmp_path, change, expect):
    errors = validate_data_dir(_dir(tmp_path, **{**GOOD, **change}))
    assert any(re.search(expect, e) for e in errors), errors


def test_missing_text_is_allowed_for_untranscribed_sets(tmp_path):
    d = _dir(tmp_path, **{k: v for k, v in GOOD.items() if k != "text"})
    assert any("text: required file is missing" in e for e in validate_data_dir(d))
    assert validate_data_dir(d, no_text=True) == []


def test_whitespace_only_transcript_is_an_error(tmp_path):
    d = _dir(tmp_path, **{**GOOD, "text": "a-1 HELLO\na-2   \nb-1 YES\n"})
    with pytest.raises(DataError, match=r"text:2: utterance 'a-2' has an empty transcript"):
        read_text_file(d / "text")


def test_speaker_labels_prefer_utt2spkid(tmp_path):
    d = _dir(tmp_path, **GOOD, utt2spkid="a-1 reader1\na-2 reader1\nb-1 reader2\n")
    assert speaker_labels(d)["b-1"] == "reader2"
    (d / "utt2spkid").unlink()
    assert speaker_labels(d)["b-1"] == "b"
    with pytest.raises(DataError, match="utt2spk: utterance 'zz' is missing from utt2spk"):
        speaker_labels(d, ["a-1", "zz"])
