"""mini_synth: a tiny corpus is valid, reproducible, and keeps its speaker and sentence splits."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
import soundfile as sf

from asr_gr.corpora.espeak import ESpeak
from asr_gr.corpora.mini_synth import (MAX_WORDS, MIN_WORDS, SETS, TINY_OPTIONS, grammar_vocabulary,
                                       make_corpus, make_sentences)
from asr_gr.data.kaldi_dir import read_table, validate_data_dir


def _generate(root, nj: int = 2):
    summary = make_corpus(root / "out", root / "data", seed=3, nj=nj, **TINY_OPTIONS)
    return root / "out", root / "data", summary


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("mini_synth"))


def _speakers(out) -> list[dict]:
    with open(out / "speakers.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _spks(data, name) -> set[str]:
    return set(read_table(data / name / "spk2utt"))


def test_data_dirs_are_valid(corpus):
    out, data, summary = corpus
    for name in SETS:
        assert validate_data_dir(data / name, no_text=name == "untranscribed") == [], name
        assert summary[name]["utterances"] == len(read_table(data / name / "utt2spk"))
        for utt, spk in read_table(data / name / "utt2spk").items():
            assert utt.startswith(spk + "-")
        assert set(read_table(data / name / "spk2gender")) == _spks(data, name)
    assert not (data / "untranscribed" / "text").exists()
    assert _spks(data, "train_heldout") == _spks(data, "train")
    assert len(_spks(data, "train")) == TINY_OPTIONS["num_train_spk"]


def test_transcripts_are_uppercase_words(corpus):
    _, data, _ = corpus
    for name in ("train", "train_heldout", "dev", "test", "probe"):
        for txt in read_table(data / name / "text").values():
            assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", txt), txt
            assert MIN_WORDS <= len(txt.split()) <= MAX_WORDS


def test_speakers_are_disjoint_across_sets(corpus):
    _, data, _ = corpus
    groups = [_spks(data, n) for n in ("train", "dev", "test", "probe", "untranscribed")]
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            assert not groups[i] & groups[j]


def test_sentences_of_other_sets_never_occur_in_train(corpus):
    _, data, _ = corpus
    train = set(read_table(data / "train" / "text").values())
    for name in ("train_heldout", "dev", "test", "probe"):
        assert not train & set(read_table(data / name / "text").values()), name


def test_unseen_speakers_have_unseen_voices_and_the_unseen_accent(corpus):
    out, _, _ = corpus
    rows = _speakers(out)
    train = [r for r in rows if r["set"] == "train"]
    voices = {(r["accent"], r["variant"]) for r in train}
    accents = {r["accent"] for r in train}
    others = [r for r in rows if r["set"] != "train"]
    assert all((r["accent"], r["variant"]) not in voices for r in others)
    new_accent = [r for r in others if r["accent"] not in accents]
    # the tiny corpus: one test and one untranscribed speaker with the accent training never hears
    assert sorted(r["set"] for r in new_accent) == ["test", "untranscribed"]
    assert {r["gender"] for r in rows} == {"m", "f"}


def test_audio_is_16k_mono_int16_and_matches_utt2dur(corpus):
    _, data, _ = corpus
    wavs = read_table(data / "test" / "wav.scp")
    durs = read_table(data / "test" / "utt2dur")
    for utt, path in wavs.items():
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        x, _ = sf.read(path, dtype="float32")
        rms_db = 20 * np.log10(np.sqrt(np.mean(x ** 2)))
        assert -35 < rms_db < -12 and np.max(np.abs(x)) < 1.0
        assert abs(len(x) / 16000 - float(durs[utt])) < 1e-3


def test_same_seed_gives_identical_files_whatever_nj(corpus, tmp_path):
    out, data, summary = corpus
    out2, data2, summary2 = _generate(tmp_path, nj=1)
    assert summary2 == summary
    assert (out2 / "speakers.tsv").read_bytes() == (out / "speakers.tsv").read_bytes()
    for name in SETS:
        assert (data2 / name / "utt2spk").read_bytes() == (data / name / "utt2spk").read_bytes()
        wavs, wavs2 = read_table(data / name / "wav.scp"), read_table(data2 / name / "wav.scp")
        for utt in wavs:
            with open(wavs[utt], "rb") as a, open(wavs2[utt], "rb") as b:
                assert a.read() == b.read(), utt


def test_rerun_after_done_does_nothing(corpus):
    out, data, summary = corpus
    wav = next((out / "wav").glob("*/*.wav"))
    before = wav.stat().st_mtime_ns
    assert make_corpus(out, data, seed=3, nj=2, **TINY_OPTIONS) == summary
    assert wav.stat().st_mtime_ns == before


def test_grammar_vocabulary_and_sentences():
    vocab = grammar_vocabulary()
    assert len(vocab) >= 300
    assert all(re.fullmatch(r"[a-z']+", w) for w in vocab)
    sents = make_sentences(500, seed=5)
    assert len(set(sents)) == 500 and sents == make_sentences(500, seed=5)
    assert all(set(s.split()) <= vocab for s in sents)


def test_espeak_rejects_unknown_voice():
    with pytest.raises(RuntimeError, match="no voice"):
        ESpeak().synth("hello", "xx-nowhere+m1")


def test_unseen_voices_do_not_depend_on_the_number_of_training_speakers():
    from asr_gr.corpora.mini_synth import plan_speakers

    def unseen(num_train):
        return [(s.set, s.accent, s.variant, s.pitch, s.rate)
                for s in plan_speakers(1, num_train, 6, 20, 72, 24, 4, 6) if s.set != "train"]

    assert unseen(36) == unseen(72) == unseen(10)
    assert [s.spk for s in plan_speakers(1, 72, 3, 3, 6)][:2] == ["s001", "s002"]  # training first


def test_default_plan_has_the_power_the_recipe_needs():
    """The default corpus: 40 unseen test speakers (6 with the accent training never hears), 6 dev,
    24 probe speakers, as many untranscribed speakers as training speakers, each voice unique."""
    import inspect
    from collections import Counter

    from asr_gr.corpora.mini_synth import UNSEEN_ACCENT, plan_speakers

    d = {k: v.default for k, v in inspect.signature(make_corpus).parameters.items()
         if v.default is not inspect.Parameter.empty}
    speakers = plan_speakers(1, d["num_train_spk"], d["num_dev_spk"], d["num_test_spk"],
                             d["num_untranscribed_spk"], d["num_probe_spk"], d["unseen_accent_test"],
                             d["unseen_accent_untranscribed"])
    sets = Counter(s.set for s in speakers)
    assert sets == {"train": 72, "dev": 6, "test": 40, "probe": 24, "untranscribed": 72}
    assert d["eval_utts_per_spk"] * sets["test"] >= 1200 and d["probe_utts_per_spk"] >= 12
    assert d["untranscribed_utts_per_spk"] >= 10
    unseen = Counter(s.set for s in speakers if s.accent == UNSEEN_ACCENT)
    assert unseen == {"test": 6, "untranscribed": 6}
    assert len({(s.accent, s.variant) for s in speakers}) == len(speakers)
    heard = {s.accent for s in speakers if s.set == "train"}
    assert heard <= {s.accent for s in speakers if s.set == "untranscribed"}  # covers training accents
