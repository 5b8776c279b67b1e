"""A small ctypes driver for libespeak-ng, the copy bundled by the PyPI package ``espeakng-loader``.

No espeak binary, no system package: the shared library and its data directory come from the
wheel. The library keeps global state, so it is initialised once per process (a forked worker
initialises its own copy).

Reproducibility: espeak-ng carries synthesis state from one utterance to the next (the pitch-flutter
and glottal-cycle phases live in C statics that no API call resets), so an utterance's samples
depend on what the process synthesised before it. Given the same sequence of calls from a fresh
process, and ``seed`` for the breath-noise generator, the output is the same bytes every time.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

# Values from espeak-ng's speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() on bad data
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
EE_OK = 0
RATE_MIN, RATE_MAX = 80, 450

SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)

# Per-process state: the loaded library, its sample rate, the chunks the callback collects and the
# callback object itself (kept here so ctypes does not free it while C holds the pointer).
_STATE: dict = {"pid": None, "lib": None, "rate": 0, "chunks": [], "callback": None}


def _on_samples(wav, numsamples, _events) -> int:
    if wav and numsamples > 0:
        _STATE["chunks"].append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
    return 0  # 0 = continue synthesis


def _load() -> tuple[ctypes.CDLL, int]:
    """Load and initialise libespeak-ng once in this process; return (library, sample rate)."""
    if _STATE["pid"] == os.getpid():
        return _STATE["lib"], _STATE["rate"]
    try:
        import espeakng_loader
        lib_path, data_path = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        lib = ctypes.CDLL(lib_path)
    except (ImportError, OSError, RuntimeError) as e:
        raise RuntimeError(f"cannot load libespeak-ng (pip install espeakng-loader): {e}") from None
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [SYNTH_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_ng_SetRandSeed.restype = None
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(),
                                 ESPEAK_INITIALIZE_DONT_EXIT)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed (returned {rate}) with data path {data_path}")
    callback = SYNTH_CALLBACK(_on_samples)
    lib.espeak_SetSynthCallback(callback)
    _STATE.update(pid=os.getpid(), lib=lib, rate=rate, chunks=[], callback=callback)
    return lib, rate


class ESpeak:
    """Text to speech with espeak-ng: ``synth(text, voice, ...)`` -> (float32 samples, sample rate)."""

    def __init__(self) -> None:
        self.lib, self.sample_rate = _load()

    def synth(self, text: str, voice: str, rate_wpm: int = 175, pitch: int = 50,
              pitch_range: int = 50, *, volume: int = 40, seed: int = 0) -> tuple[np.ndarray, int]:
        """Speak ``text`` with ``voice`` (``language[+variant]``, e.g. ``en-us+m3``).

        ``rate_wpm`` is clamped to espeak's 80..450 words per minute; ``pitch`` and ``pitch_range``
        are espeak's 0..100 scale (50 = the voice's own). ``volume`` is espeak's 0..200 scale: the
        default 40 keeps every human-like variant clear of int16 saturation (some reach it at 100).
        ``seed`` seeds the noise generator of breathy variants. Returns samples in [-1, 1] and the
        sample rate.
        """
        lib = self.lib
        if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise RuntimeError(f"espeak-ng has no voice '{voice}'")
        params = ((ESPEAK_RATE, int(np.clip(rate_wpm, RATE_MIN, RATE_MAX))),
                  (ESPEAK_VOLUME, int(np.clip(volume, 0, 200))),
                  (ESPEAK_PITCH, int(np.clip(pitch, 0, 100))),
                  (ESPEAK_RANGE, int(np.clip(pitch_range, 0, 100))))
        for param, value in params:
            lib.espeak_SetParameter(param, value, 0)
        lib.espeak_ng_SetRandSeed(seed)
        data = text.encode("utf-8")
        _STATE["chunks"] = []
        err = lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        chunks, _STATE["chunks"] = _STATE["chunks"], []
        if err != EE_OK:
            raise RuntimeError(f"espeak_Synth failed (error {err}) for voice '{voice}'")
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return pcm.astype(np.float32) / 32768.0, self.sample_rate
