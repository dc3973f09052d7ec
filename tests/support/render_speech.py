"""Spoken words rendered by espeak-ng for the tests, through ctypes on the library that the
``espeakng-loader`` package ships (its ``libespeak-ng.so`` and ``espeak-ng-data``): no system
espeak-ng is needed, so CI renders the same words as a laptop.

The calls are espeak-ng's public C API (``speak_lib.h``): ``espeak_Initialize`` with
synchronous retrieval (samples go to our callback, nothing is played), then per word
``espeak_SetVoiceByName`` (a language and a ``+variant``), ``espeak_SetParameter`` for the
rate (words per minute) and pitch (0-100), ``espeak_Synth`` and ``espeak_Synchronize``. The
callback receives 16-bit samples at the rate ``espeak_Initialize`` returns.
"""

from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

# speak_lib.h: espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE, espeakCHARS_UTF8
AUDIO_OUTPUT_SYNCHRONOUS = 2
PARAMETER_RATE = 1
PARAMETER_PITCH = 3
POSITION_CHARACTER = 1
CHARS_UTF8 = 1
OK = 0

# int callback(short *wav, int numsamples, espeak_EVENT *events); 0 continues the synthesis
SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

VOICES = ("en+m3", "en+f3", "en-us+m1", "en-us+f2")
PITCHES = (35, 65)
RATES = (140, 190)


@dataclass(frozen=True)
class Voice:
    """One way of saying a word: an espeak-ng voice name, its pitch (0-100) and rate (wpm)."""

    name: str
    pitch: int
    rate: int

    @property
    def tag(self) -> str:
        return f"{self.name.replace('+', '_')}_p{self.pitch}_r{self.rate}"


def voices(count: int) -> list[Voice]:
    """``count`` distinct voices, cycling through voice names first, then pitches and rates."""
    every = [
        Voice(name, pitch, rate) for rate, pitch, name in itertools.product(RATES, PITCHES, VOICES)
    ]
    if count > len(every):
        raise ValueError(f"at most {len(every)} voices, asked for {count}")
    return every[:count]


class Speaker:
    """espeak-ng loaded once per process (its state is global): :meth:`say` renders a word."""

    def __init__(self) -> None:
        loader = pytest.importorskip(
            "espeakng_loader",
            reason="espeakng-loader renders the spoken words (pip install .[test])",
        )
        self.library = ctypes.CDLL(loader.get_library_path())
        self.library.espeak_Initialize.restype = ctypes.c_int
        self.library.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self.library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.library.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.sample_rate = self.library.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, loader.get_data_path().encode(), 0
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = SYNTH_CALLBACK(self._receive)  # kept alive as long as the speaker
        self.library.espeak_SetSynthCallback(self._callback)

    def _receive(self, wav: ctypes.Array, samples: int, events: int) -> int:
        if wav and samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(samples,)).copy())
        return 0

    def say(self, word: str, voice: Voice) -> np.ndarray:
        """``word`` spoken by ``voice``: float32 samples in [-1, 1) at :attr:`sample_rate`."""
        if self.library.espeak_SetVoiceByName(voice.name.encode()) != OK:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}")
        self.library.espeak_SetParameter(PARAMETER_RATE, voice.rate, 0)
        self.library.espeak_SetParameter(PARAMETER_PITCH, voice.pitch, 0)
        text = word.encode() + b"\0"
        self._chunks = []
        status = self.library.espeak_Synth(
            text, len(text), 0, POSITION_CHARACTER, 0, CHARS_UTF8, None, None
        )
        self.library.espeak_Synchronize()
        if status != OK or not self._chunks:
            raise RuntimeError(f"espeak-ng rendered nothing for {word!r} ({voice}): {status}")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def speaker() -> Speaker:
    """The process's one :class:`Speaker`."""
    return Speaker()


def render_words(root: Path, words: tuple[str, ...], per_word: int) -> dict[str, dict[str, str]]:
    """``root/<word>/<word>_<voice>.wav`` for ``per_word`` voices of each word, each clip
    centred in one second (espeak's own sample rate): returns word -> {file name: word}."""
    import soundfile as sf

    talker = speaker()
    length = talker.sample_rate  # one second
    written: dict[str, dict[str, str]] = {}
    for word in words:
        for voice in voices(per_word):
            spoken = talker.say(word, voice)[:length]
            clip = np.zeros(length, dtype=np.float32)
            start = (length - len(spoken)) // 2
            clip[start : start + len(spoken)] = spoken
            name = f"{word}_{voice.tag}.wav"
            path = root / word / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), clip, talker.sample_rate, "PCM_16")
            written.setdefault(word, {})[name] = word
    return written
