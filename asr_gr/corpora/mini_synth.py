"""mini_synth: the toolkit's default corpus, synthesised with espeak-ng in under a minute.

Speakers are espeak voices: an English accent (a language file) x a voice variant x the speaker's own
base pitch, pitch range and speaking rate. Every speaker has an (accent, variant) pair of its own, so
dev, test, probe and untranscribed speakers are unseen voices; several test speakers (and some
untranscribed ones) also have an accent that training never hears. The ``probe`` set's speakers serve
the speaker probes (stage 6): many utterances of speakers the model never saw. Sentences come from a
small English grammar; the sentences of the sets are disjoint. Each utterance gets rate/pitch jitter, a random gain and
white-to-pink noise at 10-30 dB SNR, and is written as 16 kHz 16-bit mono WAV.

Output::

    <out>/wav/<spk>/<utt>.wav   <out>/speakers.tsv   <out>/.done
    <data>/{train,train_heldout,dev,test,probe,untranscribed}/   Kaldi data dirs (no text in untranscribed)

The same seed gives byte-identical files, whatever ``nj``: each speaker is synthesised in order in a
fresh worker process (espeak-ng carries state from one utterance to the next), and every random draw
comes from a generator seeded by (seed, speaker, utterance).
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import multiprocessing as mp
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from asr_gr.corpora.espeak import ESpeak
from asr_gr.data.kaldi_dir import write_data_dir
from asr_gr.utils import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

CORPUS_VERSION = 4  # bump when a change alters the generated audio or tables
SAMPLE_RATE = 16000
SETS = ("train", "train_heldout", "dev", "test", "probe", "untranscribed")

# espeak-ng voice names (files under espeak-ng-data/lang/gmw/); "en" is British English.
TRAIN_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                 "en-us-nyc")
UNSEEN_ACCENT = "en-029"  # Caribbean: never in training; the last test (and untranscribed) speakers have it
# Human-like variants from espeak-ng-data/voices/!v (no robots, whispers, croaks or klatt voices).
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "paul", "robert", "Mike", "Gene", "Lee",
                 "ed", "travis", "max")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "linda", "belinda", "steph", "Andrea", "Annie", "Alicia",
                   "aunty", "anika", "grandma")

TINY_OPTIONS = dict(num_train_spk=4, num_dev_spk=2, num_test_spk=2, num_probe_spk=2, num_untranscribed_spk=2,
                    utts_per_spk=4, heldout_per_spk=2, eval_utts_per_spk=3, probe_utts_per_spk=3,
                    untranscribed_utts_per_spk=3, unseen_accent_test=1, unseen_accent_untranscribed=1)

# Signal chain settings.
RATE_WPM = (140, 200)        # a speaker's base rate, words per minute
PITCH = (25, 75)             # a speaker's base pitch, espeak 0..100
PITCH_RANGE = (30, 70)       # a speaker's pitch range, espeak 0..100
RATE_JITTER = 0.10           # per utterance, relative
PITCH_JITTER = 6             # per utterance, espeak units (also applied to the range)
GAIN_DB = (-6.0, 3.0)
SNR_DB = (10.0, 30.0)
PAD_S = (0.10, 0.20)         # silence (then noise) before and after the speech
SPEECH_DBFS = -23.0          # RMS of the speech before gain
PEAK_MAX = 0.99              # scale down anything louder, so nothing clips


# ----------------------------------------------------------------------------- text grammar

NAMES = ("john mary peter susan david linda james sarah michael emma robert alice thomas laura "
         "william kate george anna henry lucy paul helen richard grace daniel julia mark nancy "
         "steven rachel").split()
PEOPLE = ("mother father sister brother uncle aunt cousin friend neighbour teacher doctor driver "
          "farmer baker nurse captain student manager").split()
THINGS = ("book bottle chair table window door car bicycle letter phone camera jacket basket ticket "
          "box key cup plate spoon lamp picture map clock bag coat shirt hat glove shoe bench candle "
          "blanket pillow mirror pencil notebook envelope package bucket ladder hammer kettle teapot "
          "sandwich apple banana lemon carrot onion cookie cake egg boat truck flower stone rope "
          "wheel button coin card newspaper magazine radio umbrella ring bell drum guitar piano "
          "violin painting poster towel brush watch dress glass dish sofa desk").split()
ANIMALS = "dog cat horse bird rabbit cow duck goat pony kitten".split()
ADJECTIVES = ("big small old new heavy light warm cold soft hard quiet loud clean dirty empty full "
              "broken shiny tiny huge strange lovely simple famous secret careful bright dark cheap "
              "expensive wooden plastic ancient modern gentle busy lucky").split()
COLOURS = "red blue green yellow white black brown purple pink grey golden silver".split()
PLACES = ("kitchen library station market garden school office hospital museum park beach harbour "
          "village city bakery hotel airport church theatre stadium farm forest river bridge "
          "island cinema restaurant factory cottage castle garage").split()
VERBS = [tuple(p.split("/")) for p in (
    "take/took find/found bring/brought carry/carried paint/painted sell/sold buy/bought "
    "open/opened close/closed clean/cleaned fix/fixed lose/lost hide/hid drop/dropped "
    "borrow/borrowed wash/washed move/moved push/pushed pull/pulled throw/threw catch/caught "
    "hold/held break/broke build/built draw/drew choose/chose keep/kept send/sent watch/watched "
    "need/needed want/wanted order/ordered deliver/delivered repair/repaired count/counted "
    "check/checked pack/packed forget/forgot see/saw like/liked cook/cooked return/returned "
    "collect/collected share/shared").split()]
MOTIONS = [tuple(p.split("/")) for p in
           "walk/walked run/ran drive/drove travel/travelled hurry/hurried go/went".split()]
DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
MONTHS = ("january february march april may june july august september october november "
          "december").split()
PARTS_OF_DAY = "morning afternoon evening".split()
UNITS = "one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
PREPOSITIONS = "in on under behind near beside".split()
PRONOUNS = ("i", "we", "they")
THINK_NOT = ("don't", "didn't")
COULD_NOT = ("didn't", "couldn't", "won't")
MIN_WORDS, MAX_WORDS = 4, 12


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def number_words(n: int) -> str:
    """1..99 in words: ``42`` -> ``forty two``."""
    if n < 10:
        return UNITS[n - 1]
    if n < 20:
        return TEENS[n - 10]
    return TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + UNITS[n % 10 - 1])


class _Grammar:
    """Random sentences from a dozen-odd templates; ``sentence()`` returns lowercase words."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.templates = [getattr(self, n) for n in sorted(dir(self)) if n.startswith("_t_")]

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def maybe(self, seq, p: float = 0.5) -> str:
        return self.pick(seq) + " " if self.rng.random() < p else ""

    def noun(self) -> str:
        return self.pick(THINGS if self.rng.random() < 0.8 else ANIMALS)

    def count(self) -> str:
        return number_words(int(self.rng.integers(2, 100)))

    def when(self) -> str:
        kind = int(self.rng.integers(5))
        if kind == 0:
            return f"on {self.pick(DAYS)} {self.pick(PARTS_OF_DAY)}"
        if kind == 1:
            return f"in {self.pick(MONTHS)}"
        if kind == 2:
            return self.pick(("yesterday", "today", "tomorrow", "last week", "next year"))
        if kind == 3:
            return f"at {number_words(int(self.rng.integers(1, 13)))} o'clock"
        return f"on {self.pick(DAYS)}"

    def sentence(self) -> str:
        return self.pick(self.templates)()

    # Templates: each returns one sentence.
    def _t_location(self):
        return (f"the {self.maybe(ADJECTIVES)}{self.noun()} {self.pick(('is', 'was'))} "
                f"{self.pick(PREPOSITIONS)} the {self.pick(PLACES)}")

    def _t_past_action(self):
        return (f"{self.pick(NAMES)} {self.pick(VERBS)[1]} the {self.pick(COLOURS)} {self.noun()} "
                f"{self.when()}")

    def _t_yes_no_question(self):
        return (f"did you {self.pick(VERBS)[0]} the {self.maybe(ADJECTIVES)}{self.noun()} "
                f"{self.pick(PREPOSITIONS)} the {self.pick(PLACES)}")

    def _t_where_question(self):
        return (f"where did {self.pick(NAMES)} {self.pick(VERBS)[0]} the {self.pick(COLOURS)} "
                f"{plural(self.noun())}")

    def _t_why_question(self):
        return f"why {self.pick(('is', 'was'))} the {self.noun()} so {self.pick(ADJECTIVES)}"

    def _t_counting(self):
        return (f"there {self.pick(('are', 'were'))} {self.count()} {self.maybe(ADJECTIVES)}"
                f"{plural(self.noun())} in the {self.pick(PLACES)}")

    def _t_journey(self):
        a, b = self.rng.choice(len(NAMES), size=2, replace=False)
        return (f"{NAMES[a]} and {NAMES[b]} {self.pick(MOTIONS)[1]} to the {self.pick(PLACES)} "
                f"{self.when()}")

    def _t_relative(self):
        return (f"my {self.pick(PEOPLE)} {self.pick(VERBS)[1]} {self.count()} {plural(self.noun())} "
                f"{self.when()}")

    def _t_request(self):
        return (f"please {self.pick(VERBS)[0]} the {self.maybe(COLOURS)}{self.noun()} before "
                f"{self.pick(('lunch', 'dinner', 'breakfast', 'noon', 'midnight'))}")

    def _t_meeting(self):
        return (f"we will meet at the {self.pick(PLACES)} at "
                f"{number_words(int(self.rng.integers(1, 13)))} o'clock on {self.pick(DAYS)}")

    def _t_how_many(self):
        return f"how many {plural(self.noun())} did your {self.pick(PEOPLE)} {self.pick(VERBS)[0]}"

    def _t_opinion(self):
        return (f"{self.pick(PRONOUNS)} {self.pick(THINK_NOT)} think the "
                f"{self.noun()} {self.pick(('is', 'was'))} {self.pick(ADJECTIVES)} enough")

    def _t_possessive(self):
        return (f"{self.pick(NAMES)}'s {self.pick(PEOPLE)} {self.pick(VERBS)[1]} a "
                f"{self.pick(ADJECTIVES)} {self.noun()} in {self.pick(MONTHS)}")

    def _t_weather(self):
        return (f"it's {self.pick(('very ', 'quite ', 'really ', ''))}{self.pick(ADJECTIVES)} "
                f"in the {self.pick(PLACES)} this {self.pick(PARTS_OF_DAY)}")

    def _t_favour(self):
        return (f"can you {self.pick(VERBS)[0]} {self.count()} {self.pick(COLOURS)} "
                f"{plural(self.noun())} for {self.pick(NAMES)}")

    def _t_because(self):
        return (f"they {self.pick(COULD_NOT)} {self.pick(VERBS)[0]} the "
                f"{self.noun()} because it was {self.pick(ADJECTIVES)}")

    def _t_when_question(self):
        return (f"when will the {self.pick(PEOPLE)} {self.pick(VERBS)[0]} the "
                f"{self.maybe(ADJECTIVES)}{self.noun()}")

    def _t_company(self):
        return (f"{self.pick(('he', 'she', 'we', 'they'))} {self.pick(VERBS)[1]} the {self.noun()} "
                f"{self.pick(('with', 'without'))} {self.pick(NAMES)} {self.when()}")

    def _t_short_question(self):
        return (f"{self.pick(('where is', 'who took', 'who found'))} the "
                f"{self.maybe(COLOURS, 0.3)}{self.noun()}")

    def _t_description(self):
        return f"the {self.noun()} {self.pick(('is', 'was', 'looks'))} {self.pick(ADJECTIVES)}"

    def _t_liking(self):
        return (f"{self.pick(NAMES)} {self.pick(('likes', 'hates', 'wants'))} "
                f"{self.maybe(COLOURS)}{plural(self.noun())}")

    def _t_reported(self):
        return (f"{self.pick(NAMES)} said that the {self.maybe(ADJECTIVES)}{self.noun()} was "
                f"{self.pick(PREPOSITIONS)} the {self.pick(PLACES)} {self.when()}")

    def _t_two_actions(self):
        first = f"{self.pick(NAMES)} {self.pick(VERBS)[1]} the {self.noun()}"
        second = f"{self.pick(NAMES)} {self.pick(VERBS)[1]} the {self.maybe(COLOURS)}{self.noun()}"
        return f"{first} and {second}" + (f" {self.when()}" if self.rng.random() < 0.3 else "")

    def _t_time(self):
        return (f"the {self.pick(('train', 'bus', 'boat', 'plane'))} "
                f"{self.pick(('leaves', 'arrives', 'left', 'arrived'))} at "
                f"{number_words(int(self.rng.integers(1, 13)))} "
                f"{number_words(int(self.rng.integers(5, 12)) * 5)}")


def grammar_vocabulary() -> set[str]:
    """Every word the grammar can produce (for tests and reports)."""
    words = set(" ".join(NAMES + PEOPLE + THINGS + ANIMALS + ADJECTIVES + COLOURS + PLACES + DAYS
                         + MONTHS + PARTS_OF_DAY + UNITS + TEENS + TENS + PREPOSITIONS).split())
    words |= {w for pair in VERBS + MOTIONS for w in pair}
    words |= {plural(n) for n in THINGS + ANIMALS} | {n + "'s" for n in NAMES}
    rng = np.random.default_rng(0)
    g = _Grammar(rng)
    for _ in range(5000):  # the templates' own function words
        words.update(g.sentence().split())
    return words


def make_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences of 4-12 words, in a seed-determined order."""
    g = _Grammar(np.random.default_rng([seed, 2]))
    seen: dict[str, None] = {}
    while len(seen) < n:
        s = g.sentence()
        if MIN_WORDS <= len(s.split()) <= MAX_WORDS:
            seen.setdefault(s)
    return list(seen)


# ----------------------------------------------------------------------------- speakers


@dataclass(frozen=True)
class Speaker:
    spk: str
    set: str           # train, dev, test, probe or untranscribed
    accent: str        # espeak language voice
    variant: str       # espeak voice variant
    gender: str        # m or f, from the variant
    pitch: int
    pitch_range: int
    rate: int          # words per minute

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def plan_speakers(seed: int, num_train: int, num_dev: int, num_test: int, num_untranscribed: int,
                  num_probe: int = 0, unseen_test: int = 1, unseen_untranscribed: int = 0) -> list[Speaker]:
    """Speakers with distinct (accent, variant) pairs; genders alternate within each set while an
    accent has unused variants of both.

    Training cycles through the accents; dev, test, probe and untranscribed speakers use accents that
    training has, except the last ``unseen_test`` test speakers and the last ``unseen_untranscribed``
    untranscribed speakers, who get UNSEEN_ACCENT. The unseen voices are drawn first, from a
    generator of their own, so they stay the same whatever the number of training speakers: corpora
    of different sizes are scored on the same unseen voices. Ids follow set order: training speakers
    first, then dev, test, probe, untranscribed.
    """
    accents = [TRAIN_ACCENTS[i] for i in np.random.default_rng([seed, 1]).permutation(len(TRAIN_ACCENTS))]
    heard = accents[:min(num_train, len(accents))]
    used: set[tuple[str, str]] = set()
    variant_use = {v: 0 for v in MALE_VARIANTS + FEMALE_VARIANTS}

    def variant_for(accent: str, gender: str, rng: np.random.Generator) -> tuple[str, str]:
        """An unused variant of ``accent``, of ``gender`` while that gender has one left, else of the
        other; returns (variant, gender)."""
        for g in (gender, "f" if gender == "m" else "m"):
            pool = [v for v in (MALE_VARIANTS if g == "m" else FEMALE_VARIANTS) if (accent, v) not in used]
            if pool:
                break
        else:
            raise ValueError(f"too many speakers: no unused variant left for accent {accent}")
        fewest = min(variant_use[v] for v in pool)
        pool = [v for v in pool if variant_use[v] == fewest]
        v = pool[int(rng.integers(len(pool)))]
        used.add((accent, v))
        variant_use[v] += 1
        return v, g

    eval_rng, train_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])
    eval_plan = []
    unseen = {"test": min(unseen_test, num_test), "untranscribed": min(unseen_untranscribed, num_untranscribed)}
    order = [heard[i] for i in eval_rng.permutation(len(heard))]
    cursor = 0  # one cycle through the heard accents across all unseen sets: every accent equally used
    for name, n in (("dev", num_dev), ("test", num_test), ("probe", num_probe),
                    ("untranscribed", num_untranscribed)):
        k = unseen.get(name, 0)
        eval_plan += [(name, order[(cursor + i) % len(order)]) for i in range(n - k)] + [(name, UNSEEN_ACCENT)] * k
        cursor += n - k
    train_plan = [("train", accents[i % len(accents)]) for i in range(num_train)]

    drawn: dict[str, list[dict]] = {}
    for plan, rng in ((eval_plan, eval_rng), (train_plan, train_rng)):
        for name, accent in plan:
            k = len(drawn.setdefault(name, []))
            variant, gender = variant_for(accent, "mf"[(k + (name == "test")) % 2], rng)
            drawn[name].append(dict(
                set=name, accent=accent, variant=variant, gender=gender,
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                pitch_range=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
                rate=int(rng.integers(RATE_WPM[0], RATE_WPM[1] + 1))))
    ordered = [f for name in ("train", "dev", "test", "probe", "untranscribed") for f in drawn.get(name, [])]
    return [Speaker(spk=f"s{i + 1:03d}", **f) for i, f in enumerate(ordered)]


# ----------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class Utterance:
    utt: str
    spk: str
    set: str
    text: str          # lowercase words
    index: int         # position within its speaker, for the random generator


def _coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose spectrum falls as 1/f^a, a random in [0, 1] (white to pink)."""
    size = 1 << (n - 1).bit_length()  # a power of two keeps the FFTs fast
    spec = np.fft.rfft(rng.standard_normal(size))
    freqs = np.arange(len(spec), dtype=np.float64)
    freqs[0] = 1.0
    spec *= freqs ** (-rng.uniform(0.0, 1.0) / 2)
    spec[0] = 0.0
    noise = np.fft.irfft(spec, size)[:n]
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


@functools.lru_cache(maxsize=None)
def _resampler(orig_rate: int) -> torchaudio.transforms.Resample:
    """torchaudio's sinc resampler to SAMPLE_RATE, its kernel computed once per process."""
    return torchaudio.transforms.Resample(orig_rate, SAMPLE_RATE)


def render_utterance(tts: ESpeak, speaker: Speaker, text: str, rng: np.random.Generator) -> np.ndarray:
    """Synthesise one utterance through the signal chain; int16 samples at SAMPLE_RATE."""
    rate = speaker.rate * rng.uniform(1 - RATE_JITTER, 1 + RATE_JITTER)
    pitch = speaker.pitch + rng.uniform(-PITCH_JITTER, PITCH_JITTER)
    pitch_range = speaker.pitch_range + rng.uniform(-PITCH_JITTER, PITCH_JITTER)
    audio, sr = tts.synth(text, speaker.voice, round(rate), round(pitch), round(pitch_range),
                          seed=int(rng.integers(2 ** 31)))
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    if len(loud) == 0:
        raise RuntimeError(f"espeak produced silence for voice {speaker.voice}: '{text}'")
    audio = audio[loud[0]:loud[-1] + 1]
    speech = _resampler(sr)(torch.from_numpy(audio)).numpy().astype(np.float64)
    speech *= 10 ** (SPEECH_DBFS / 20) / np.sqrt(np.mean(speech ** 2))
    pads = [int(rng.uniform(*PAD_S) * SAMPLE_RATE) for _ in range(2)]
    signal = np.concatenate([np.zeros(pads[0]), speech, np.zeros(pads[1])])
    snr_db = rng.uniform(*SNR_DB)
    signal += _coloured_noise(len(signal), rng) * 10 ** ((SPEECH_DBFS - snr_db) / 20)
    signal *= 10 ** (rng.uniform(*GAIN_DB) / 20)
    peak = np.max(np.abs(signal))
    if peak > PEAK_MAX:
        signal *= PEAK_MAX / peak
    return np.round(signal * 32767).astype(np.int16)


def _synth_speaker(task: tuple[int, Speaker, list[Utterance], str]) -> list[tuple[str, float]]:
    """Worker: synthesise one speaker's utterances in order; return (utt, seconds) pairs."""
    seed, speaker, utts, wav_dir = task
    torch.set_num_threads(1)
    tts = ESpeak()
    spk_num = int(speaker.spk[1:])
    out = []
    for u in utts:
        samples = render_utterance(tts, speaker, u.text, np.random.default_rng([seed, spk_num, u.index]))
        path = Path(wav_dir) / speaker.spk / f"{u.utt}.wav"
        with atomic_path(path, suffix=".wav") as tmp:
            sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        out.append((u.utt, len(samples) / SAMPLE_RATE))
    return out


def _worker_context():
    """A start method whose workers have never run espeak: forkserver where available."""
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([__name__])
    return ctx


# ----------------------------------------------------------------------------- corpus


def plan_utterances(speakers: list[Speaker], seed: int, *, utts_per_spk: int, heldout_per_spk: int,
                    eval_utts_per_spk: int, untranscribed_utts_per_spk: int, probe_utts_per_spk: int = 0
                    ) -> dict[str, list[Utterance]]:
    """Each speaker's utterances (training speakers: train then train_heldout), with sentences
    drawn without repetition from one pool, so no sentence is in two sets."""
    per_set = {"train": utts_per_spk, "train_heldout": heldout_per_spk, "dev": eval_utts_per_spk,
               "test": eval_utts_per_spk, "probe": probe_utts_per_spk, "untranscribed": untranscribed_utts_per_spk}
    owners = {"train": "train", "train_heldout": "train", "dev": "dev", "test": "test", "probe": "probe",
              "untranscribed": "untranscribed"}
    counts = {s: per_set[s] * sum(sp.set == owners[s] for sp in speakers) for s in SETS}
    pool = iter(make_sentences(sum(counts.values()), seed))
    texts = {s: [next(pool) for _ in range(counts[s])] for s in SETS}  # train first, then the rest
    plan: dict[str, list[Utterance]] = {sp.spk: [] for sp in speakers}
    for s in SETS:
        k = 0
        for sp in speakers:
            if sp.set != owners[s]:
                continue
            for _ in range(per_set[s]):
                i = len(plan[sp.spk])
                plan[sp.spk].append(Utterance(f"{sp.spk}-{i:04d}", sp.spk, s, texts[s][k], i))
                k += 1
    return plan


def _write_speakers_tsv(path: Path, speakers: list[Speaker]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            fields = list(asdict(speakers[0]))
            w = csv.DictWriter(f, fieldnames=fields, delimiter="\t", lineterminator="\n")
            w.writeheader()
            for sp in speakers:
                w.writerow(asdict(sp))


def _remove_stale_wavs(wav_dir: Path, keep: set[Path]) -> None:
    """Delete WAVs a previous run with other options left behind, and emptied speaker dirs."""
    for p in sorted(wav_dir.glob("*/*.wav")):
        if p not in keep:
            p.unlink()
    for d in sorted(wav_dir.iterdir()):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def make_corpus(out_dir, data_dir, *, seed: int = 1, nj: int = 2, num_train_spk: int = 72,
                num_dev_spk: int = 6, num_test_spk: int = 40, num_probe_spk: int = 24,
                num_untranscribed_spk: int = 72, utts_per_spk: int = 14, heldout_per_spk: int = 2,
                eval_utts_per_spk: int = 30, probe_utts_per_spk: int = 12,
                untranscribed_utts_per_spk: int = 10, unseen_accent_test: int = 6,
                unseen_accent_untranscribed: int = 6) -> dict:
    """Generate mini_synth into ``out_dir`` (audio) and ``data_dir`` (Kaldi data dirs).

    ``utts_per_spk`` is the training utterances of each training speaker, who also says
    ``heldout_per_spk`` more for train_heldout. Returns a summary: per set, speakers, utterances
    and minutes (a set with no utterances is not written, and an old dir of it is removed). A rerun
    with the same options after a finished run does nothing.
    """
    if num_train_spk < 1 or utts_per_spk < 1:
        raise ValueError("mini_synth needs at least one training speaker with one utterance")
    out, data = Path(out_dir).resolve(), Path(data_dir).resolve()
    params = dict(version=CORPUS_VERSION, out_dir=str(out), data_dir=str(data), seed=seed,
                  num_train_spk=num_train_spk, num_dev_spk=num_dev_spk, num_test_spk=num_test_spk,
                  num_untranscribed_spk=num_untranscribed_spk, utts_per_spk=utts_per_spk,
                  heldout_per_spk=heldout_per_spk, eval_utts_per_spk=eval_utts_per_spk,
                  untranscribed_utts_per_spk=untranscribed_utts_per_spk, num_probe_spk=num_probe_spk,
                  probe_utts_per_spk=probe_utts_per_spk, unseen_accent_test=unseen_accent_test,
                  unseen_accent_untranscribed=unseen_accent_untranscribed)
    done = out / ".done"
    if done.exists():
        record = json.loads(done.read_text(encoding="utf-8"))
        if record["params"] == params and all((data / s / "utt2spk").exists() for s in record["summary"]):
            log.info("%s is complete for these options; nothing to do", out)
            return record["summary"]
        done.unlink()

    speakers = plan_speakers(seed, num_train_spk, num_dev_spk, num_test_spk, num_untranscribed_spk,
                             num_probe_spk, unseen_accent_test, unseen_accent_untranscribed)
    plan = plan_utterances(speakers, seed, utts_per_spk=utts_per_spk, heldout_per_spk=heldout_per_spk,
                           eval_utts_per_spk=eval_utts_per_spk,
                           untranscribed_utts_per_spk=untranscribed_utts_per_spk,
                           probe_utts_per_spk=probe_utts_per_spk)
    wav_dir = out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(seed, sp, plan[sp.spk], str(wav_dir)) for sp in speakers]
    log.info("synthesising %d utterances of %d speakers with %d jobs",
             sum(len(u) for u in plan.values()), len(speakers), nj)
    durations: dict[str, float] = {}
    # One fresh process per speaker (maxtasksperchild=1): espeak's state never crosses speakers.
    with _worker_context().Pool(processes=max(1, nj), maxtasksperchild=1) as pool:
        for i, result in enumerate(pool.imap(_synth_speaker, tasks, chunksize=1), 1):
            durations.update(result)
            if i % 10 == 0 or i == len(tasks):
                log.info("%d/%d speakers done", i, len(tasks))

    summary: dict = {}
    gender = {sp.spk: sp.gender for sp in speakers}
    wav_of = {u.utt: wav_dir / u.spk / f"{u.utt}.wav" for us in plan.values() for u in us}
    for s in SETS:
        utts = [u for us in plan.values() for u in us if u.set == s]
        if not utts:
            if (data / s).exists():
                log.info("removing %s: these options give the set no utterances", data / s)
                shutil.rmtree(data / s)
            continue
        write_data_dir(
            data / s,
            wav_scp={u.utt: str(wav_of[u.utt]) for u in utts},
            utt2spk={u.utt: u.spk for u in utts},
            text=None if s == "untranscribed" else {u.utt: u.text.upper() for u in utts},
            spk2gender=gender,
            utt2dur={u.utt: durations[u.utt] for u in utts})
        summary[s] = dict(speakers=len({u.spk for u in utts}), utterances=len(utts),
                          minutes=round(sum(durations[u.utt] for u in utts) / 60, 2))
    _write_speakers_tsv(out / "speakers.tsv", speakers)
    _remove_stale_wavs(wav_dir, set(wav_of.values()))
    atomic_write_text(done, json.dumps({"params": params, "summary": summary}, indent=1) + "\n")
    return summary
