"""hear_mn.audio_io: decoding any audio (soundfile, then PyAV), block-wise reading and
resampling, how inputs map to relative output paths, and the permissions of written files.

Test media are generated here: tones written with soundfile, and with PyAV for the formats
libsndfile cannot write (AAC in m4a/mp4/mov, Opus in webm, video with or without audio).
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from hear_mn import audio_io
from hear_mn.audio_io import AudioReadError, find_audio_files, load_audio, save_npz

sf = pytest.importorskip("soundfile")
soxr = pytest.importorskip("soxr")
av = pytest.importorskip("av")

TARGET_RATE = 32000
TONE_HZ = 440.0


def _tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """(frames, channels) float32: 440 Hz on the first channel, 1100 Hz on the others."""
    t = np.arange(round(seconds * rate)) / rate
    columns = [0.5 * np.sin(2 * np.pi * TONE_HZ * t)]
    columns += [0.3 * np.sin(2 * np.pi * 2.5 * TONE_HZ * t)] * (channels - 1)
    return np.stack(columns, axis=1).astype(np.float32)


def _encode_with_pyav(
    path: Path,
    audio_codec: str | None,
    rate: int = 48000,
    video_codec: str | None = None,
    seconds: float = 1.0,
    container_format: str | None = None,
) -> Path:
    """Write a stereo tone (and/or a few tiny video frames) with PyAV's bundled FFmpeg."""
    with av.open(str(path), "w", format=container_format) as container:
        # Every stream must exist before the first packet is muxed (the header is written then).
        video = audio = None
        if video_codec is not None:
            video = container.add_stream(video_codec, rate=5)
            video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        if audio_codec is not None:
            audio = container.add_stream(audio_codec, rate=rate, layout="stereo")
        if video is not None:
            for index in range(round(5 * seconds)):
                image = np.full((32, 32, 3), 40 * index % 255, np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(video.encode(frame))
            container.mux(video.encode(None))
        if audio is not None:
            samples = _tone(seconds, rate, channels=2)
            for start in range(0, len(samples), 4096):
                block = np.ascontiguousarray(samples[start : start + 4096].T)
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = rate, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


def _dominant_frequency(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[np.argmax(spectrum)])


def _whole_file_reference(path: Path, sample_rate: int) -> np.ndarray:
    """The previous whole-file path: read everything, average channels, one soxr call."""
    data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if file_rate == sample_rate:
        return mono
    return soxr.resample(mono, file_rate, sample_rate, quality="HQ")


# --------------------------------------------------------------------------- item 12: decoders

MEDIA = {
    # name: (audio codec, sample rate, video codec, container format)
    "tone.m4a": ("aac", 44100, None, "ipod"),
    "tone.aac": ("aac", 44100, None, "adts"),
    "tone.webm": ("libopus", 48000, None, "webm"),
    "clip.mp4": ("aac", 48000, "mpeg4", None),
    "clip.mkv": ("libopus", 48000, "mpeg4", None),
    "clip.mov": ("aac", 22050, "mpeg4", None),
    "clip_vp8.webm": ("libopus", 48000, "libvpx", "webm"),
}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    """Files only PyAV reads, a video without audio, a corrupt m4a, and a text file."""
    root = tmp_path_factory.mktemp("media")
    for name, (codec, rate, video, container_format) in MEDIA.items():
        _encode_with_pyav(root / name, codec, rate, video, container_format=container_format)
    _encode_with_pyav(root / "silent_video.mp4", None, video_codec="mpeg4")
    (root / "broken.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(range(200)))
    (root / "notes.txt").write_text("not audio\n")
    (root / "README").write_text("no extension\n")
    (root / ".hidden.m4a").write_bytes(b"hidden files are never listed")
    return root


@pytest.mark.parametrize("name", sorted(MEDIA))
def test_pyav_reads_what_soundfile_cannot(media_dir, name) -> None:
    audio = load_audio(media_dir / name, TARGET_RATE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - TARGET_RATE) < 0.1 * TARGET_RATE  # one second, give or take padding
    assert abs(_dominant_frequency(audio, TARGET_RATE) - TONE_HZ) < 5


def test_video_without_audio_stream_fails_with_its_reason(media_dir) -> None:
    with pytest.raises(AudioReadError, match="no audio stream") as info:
        load_audio(media_dir / "silent_video.mp4", TARGET_RATE)
    assert "silent_video.mp4" in str(info.value) and "video" in str(info.value)


def test_unreadable_media_names_both_decoders_reasons(media_dir) -> None:
    with pytest.raises(AudioReadError, match="not a readable audio file") as info:
        load_audio(media_dir / "broken.m4a", TARGET_RATE)
    message = str(info.value)
    assert "broken.m4a" in message and "soundfile:" in message and "PyAV:" in message


def test_directories_pick_up_audio_and_video_extensions(media_dir) -> None:
    found = [relative.as_posix() for _, relative in find_audio_files([media_dir])]
    expected = {*MEDIA, "silent_video.mp4", "broken.m4a"}
    assert found == sorted(expected)


def test_scan_lists_files_no_decoder_is_asked_to_read(media_dir) -> None:
    scan = audio_io.scan_audio_inputs([media_dir])
    assert scan.files == find_audio_files([media_dir])
    ignored = {path.name: reason for path, reason in scan.ignored}
    assert set(ignored) == {"notes.txt", "README"}  # hidden files stay out of both lists
    assert ignored["notes.txt"] == "not an audio or video file extension"
    assert ignored["README"] == "no file extension"


def test_lossless_track_in_a_container_equals_the_whole_signal_resampled(tmp_path) -> None:
    """PyAV's block path gives soxr.resample of the whole mono signal, bit for bit."""
    path = _encode_with_pyav(tmp_path / "tone.mka", "flac", rate=22050, seconds=3.0)
    pcm = np.round(_tone(3.0, 22050, channels=2) * 32768)  # the int16 samples FLAC stores
    mono = (pcm.astype(np.float32) / 32768).mean(axis=1, dtype=np.float32)
    expected = soxr.resample(mono, 22050, TARGET_RATE, quality="HQ")
    np.testing.assert_array_equal(load_audio(path, TARGET_RATE), expected)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_block_reading_equals_the_whole_file_path(
    tmp_path, monkeypatch, rate, channels, suffix
) -> None:
    """Many small blocks through one soxr stream give exactly the whole-file result."""
    path = tmp_path / f"tone_{rate}_{channels}{suffix}"
    sf.write(path, _tone(2.3, rate, channels), rate)
    monkeypatch.setattr(audio_io, "_BLOCK_FRAMES", 1000)
    for sample_rate in (TARGET_RATE, 16000):
        expected = _whole_file_reference(path, sample_rate)
        np.testing.assert_array_equal(load_audio(path, sample_rate), expected)


@pytest.mark.parametrize("name", ["long.wav", "long.m4a"])
def test_peak_memory_is_the_output_plus_a_block(tmp_path, name) -> None:
    """No copy of the whole file (multi-channel, or at its own rate) is ever held."""
    seconds, rate = 60.0, 44100
    path = tmp_path / name
    if name.endswith(".wav"):
        sf.write(path, _tone(seconds, rate, channels=2), rate, subtype="PCM_16")
    else:
        _encode_with_pyav(path, "aac", rate, seconds=seconds, container_format="ipod")
    tracemalloc.start()
    try:
        audio = load_audio(path, TARGET_RATE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(len(audio) - seconds * TARGET_RATE) < 0.01 * seconds * TARGET_RATE
    # The stereo float32 file alone would be 21 MB, its mono mix 10.6 MB; the output is 7.7 MB.
    assert peak < audio.nbytes + 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------- item 13: names


@pytest.fixture
def two_folders(tmp_path) -> Path:
    """train/a.wav, train/sub/b.wav, test/a.wav and a loose extra/c.wav."""
    for relative in ("train/a.wav", "train/sub/b.wav", "test/a.wav", "extra/c.wav"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / relative, _tone(0.1, 16000, 1), 16000)
    return tmp_path


def test_several_inputs_are_mirrored_under_their_names(two_folders) -> None:
    root = two_folders
    found = find_audio_files([root / "train", root / "test/", root / "extra" / "c.wav"])
    relative = [r.as_posix() for _, r in found]
    assert relative == ["train/a.wav", "train/sub/b.wav", "test/a.wav", "c.wav"]
    assert [path for path, _ in found][:3] == [
        root / "train" / "a.wav",
        root / "train" / "sub" / "b.wav",
        root / "test" / "a.wav",
    ]


def test_current_directory_is_mirrored_under_its_own_name(two_folders, monkeypatch) -> None:
    monkeypatch.chdir(two_folders / "train")
    relative = [r.as_posix() for _, r in find_audio_files([".", "../test"])]
    assert relative == ["train/a.wav", "train/sub/b.wav", "test/a.wav"]


def test_one_input_keeps_paths_relative_to_it(two_folders) -> None:
    relative = [r.as_posix() for _, r in find_audio_files([two_folders / "train"])]
    assert relative == ["a.wav", "sub/b.wav"]  # as before, so existing outputs still resume


def test_inputs_with_the_same_name_are_refused(tmp_path) -> None:
    for parent in ("a", "b"):
        (tmp_path / parent / "data").mkdir(parents=True)
        sf.write(tmp_path / parent / "data" / "x.wav", _tone(0.1, 16000, 1), 16000)
    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    with pytest.raises(audio_io.InputNameError, match="same name 'data'") as info:
        find_audio_files([first, second])
    assert str(first) in str(info.value) and str(second) in str(info.value)
    assert isinstance(info.value, ValueError)
    # The same folder given twice is not a conflict: its files are listed once.
    assert len(find_audio_files([first, f"{first}/"])) == 1


# --------------------------------------------------------------------------- item 16: modes


@pytest.mark.parametrize(
    "umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)], ids=["022", "027", "002"]
)
def test_save_npz_honours_the_umask(tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        written = save_npz(tmp_path / "out" / "x.npz", a=np.arange(3))
    finally:
        os.umask(previous)
    assert oct(written.stat().st_mode & 0o777) == oct(mode)
    assert np.load(written)["a"].tolist() == [0, 1, 2]
    assert [p.name for p in written.parent.iterdir()] == ["x.npz"]  # no temporary file left
