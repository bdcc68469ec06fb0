"""Decoding, mixing, resampling once per rate, and the chunk plan."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

import soxr
import tracemalloc

from mirflow.audio import DecodeError, decode, plan_chunks, store_audio

from conftest import click_track


def test_short_files_are_one_chunk_and_long_files_are_split_with_overlap():
    assert len(plan_chunks(60.0)) == 1
    assert len(plan_chunks(300.0, enabled=False)) == 1
    spans = plan_chunks(300.0)  # 120 s chunks, 10 s overlap
    assert [(s.start, s.end) for s in spans] == [(0, 120), (110, 230), (220, 300)]
    assert [(s.core_start, s.core_end) for s in spans] == [(0, 115), (115, 225), (225, 300)]


@pytest.mark.parametrize("duration", [61.0, 119.9, 120.0, 120.1, 230.0, 1234.5, 3600.0])
def test_chunks_cover_the_track_and_cores_tile_it(duration):
    spans = plan_chunks(duration, min_duration=60, length=120, overlap=10)
    assert spans[0].start == 0 and spans[-1].end == duration
    for a, b in zip(spans, spans[1:]):
        assert b.start < a.end  # overlap, never a gap
        assert a.core_end == b.core_start == (b.start + a.end) / 2
    assert all(s.end - s.start <= 120 for s in spans)
    assert spans[-1].end - spans[-1].start > 10  # the last chunk reaches past the overlap


def test_store_audio_mixes_and_resamples_once_per_wanted_rate(tmp_path):
    path = tmp_path / "six.wav"
    samples = click_track(2.0, [0.5, 1.0], rate=48000, channels=6)
    samples[:, 3] = 0.0  # one silent channel: the mix is the mean
    soundfile.write(path, samples, 48000, subtype="PCM_16")
    stored = store_audio(path, {(22050, "mono"), (48000, "all"), (None, "mono")}, tmp_path)
    assert (stored.sample_rate, stored.channels, stored.duration) == (48000, 6, 2.0)
    assert len(stored.arrays) == 3  # (None, mono) is the file's own rate: one array
    mono = stored.samples(22050, "mono")
    assert mono.dtype == np.float32 and mono.ndim == 1 and abs(len(mono) - 44100) <= 1
    whole = soxr.resample(samples.mean(axis=1), 48000, 22050)
    np.testing.assert_allclose(mono[:len(whole)], whole[:len(mono)], atol=2e-3)  # streaming == one pass
    assert stored.samples(48000, "all").shape == (6, 96000)
    assert np.max(stored.samples(48000, "mono")) == pytest.approx(0.9 * 5 / 6, abs=1e-3)
    chunk = stored.chunk(plan_chunks(2.0)[0], 22050, "mono")
    assert isinstance(chunk.samples.base, np.memmap) or isinstance(chunk.samples, np.memmap)  # mapped, not copied
    stored.remove()
    assert not list(tmp_path.glob("*.f32"))


@pytest.mark.parametrize("frames", [8000 * 50, 8000 * 50 + 1, 8000 * 57 + 313])
def test_a_flacs_blocks_decoded_by_two_threads_are_one_readers_blocks(tmp_path, frames):
    """A FLAC file is decoded by two threads, each its own handle, alternate blocks (seeking
    in FLAC is exact): the blocks one reader gives, in order, whatever the last block's length,
    and a stop half-way ends both threads."""
    import threading

    from mirflow.audio import _interleaved

    path = tmp_path / "a.flac"
    samples = np.random.default_rng(frames).standard_normal((frames, 2)) * 0.3
    soundfile.write(path, np.clip(samples, -1, 1), 8000, subtype="PCM_16")
    one = list(soundfile.blocks(path, blocksize=80000, dtype="float32", always_2d=True))
    before = threading.active_count()
    two = list(_interleaved(str(path), 80000, frames))
    assert len(two) == len(one) >= 5 and all(np.array_equal(a, b) for a, b in zip(one, two))
    blocks = _interleaved(str(path), 80000, frames)
    assert np.array_equal(next(blocks), one[0])
    blocks.close()
    assert threading.active_count() == before
    stored = store_audio(path, {(None, "all")}, tmp_path)
    assert np.array_equal(stored.samples(8000, "all"), np.vstack(one).T)
    stored.remove()


@pytest.mark.parametrize("name, subtype, channels", [
    ("a.wav", "PCM_16", 2), ("a.wav", "PCM_16", 1), ("a.aiff", "PCM_16", 3), ("a.wav", "PCM_24", 2),
    ("a.flac", "PCM_16", 2), ("a.wav", "FLOAT", 2)])
def test_the_stored_samples_are_libsndfiles_float32_and_numpys_mean_to_the_bit(tmp_path, name, subtype, channels):
    """16-bit WAV and AIFF are read as stored and scaled here, and a stereo mix is one addition
    and a halving: the same numbers as libsndfile's own float32 reading and NumPy's mean."""
    path = tmp_path / name
    rate = 44100
    samples = np.random.default_rng(channels).standard_normal((rate * 12 + 17, channels)) * 0.3
    samples[rate:rate + 500] = [1.0] + [-1.0] * (channels - 1)  # full scale both ways
    soundfile.write(path, np.clip(samples, -1, 1), rate, subtype=subtype)
    stored = store_audio(path, {(None, "mono"), (None, "all")}, tmp_path)
    expected, _ = soundfile.read(path, dtype="float32", always_2d=True)
    assert np.array_equal(stored.samples(rate, "all"), expected.T)
    mono = stored.samples(rate, "mono")
    assert np.array_equal(mono, expected[:, 0] if channels == 1 else expected.mean(axis=1, dtype=np.float32))
    assert mono.std() > 0.1
    stored.remove()


def test_decoding_a_long_file_holds_one_block_at_a_time(tmp_path):
    path = tmp_path / "long.wav"
    rate, minutes = 22050, 10
    with soundfile.SoundFile(path, "w", rate, 2, subtype="PCM_16") as out:
        block = (np.random.default_rng(0).standard_normal((rate * 60, 2)) * 0.1).astype(np.float32)
        for _ in range(minutes):
            out.write(block)
    tracemalloc.start()
    stored = store_audio(path, {(44100, "mono"), (None, "all")}, tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole_file = minutes * 60 * rate * 2 * 4
    assert stored.duration == minutes * 60
    assert peak < whole_file / 8, f"peak {peak / 1e6:.0f} MB while decoding a {whole_file / 1e6:.0f} MB file"


def test_undecodable_inputs_give_one_line_errors_naming_the_file(tmp_path):
    garbage = tmp_path / "notes.mp3"
    garbage.write_bytes(b"this is not audio at all" * 100)
    for read in (decode, lambda p: store_audio(p, {(None, "mono")}, tmp_path)):
        with pytest.raises(DecodeError) as caught:
            read(garbage)
        assert str(caught.value).startswith(f"{garbage}: cannot decode audio")
    assert "\n" not in str(caught.value)
    with pytest.raises(DecodeError, match="no such file"):
        decode(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 1), dtype=np.float32), 22050)
    with pytest.raises(DecodeError, match="contains no audio"):
        decode(empty)
    with pytest.raises(DecodeError, match="contains no audio"):
        store_audio(empty, {(None, "mono")}, tmp_path)
    assert not list(tmp_path.glob("*.f32"))  # nothing half-written left behind
    zero = tmp_path / "zero.mp3"
    zero.write_bytes(b"")
    with pytest.raises(DecodeError, match=r"zero.mp3: the file is empty \(0 bytes\)$"):
        decode(zero)
    with pytest.raises(DecodeError) as caught:
        decode(garbage)
    assert "''" not in str(caught.value) and "pipe" not in str(caught.value)


@pytest.mark.parametrize("channels, bad", [(1, np.nan), (1, -np.inf), (2, np.nan), (2, np.inf)])
def test_non_finite_samples_anywhere_are_refused_and_nothing_is_left(tmp_path, channels, bad):
    """The decoder looks at every sample only where a block's mix has no finite energy: a NaN
    or infinity in any channel, in any block, must still be found."""
    path = tmp_path / "float.wav"
    samples = np.full((22050 * 25, channels), 0.1, dtype=np.float32)  # three 10 s blocks
    samples[22050 * 21, channels - 1] = bad  # in the last block, in the last channel only
    soundfile.write(path, samples, 22050, subtype="FLOAT")
    with pytest.raises(DecodeError, match=r"float.wav: contains NaN or infinite samples$"):
        store_audio(path, {(None, "mono"), (None, "all"), (11025, "mono")}, tmp_path)
    assert not list(tmp_path.glob("*.f32"))
    samples[22050 * 21, channels - 1] = 0.1
    soundfile.write(path, samples, 22050, subtype="FLOAT")
    stored = store_audio(path, {(None, "mono"), (None, "all")}, tmp_path)
    assert stored.rms_db == pytest.approx(20 * np.log10(0.1), abs=1e-4)
    np.testing.assert_array_equal(stored.samples(None, "mono"), samples.mean(axis=1, dtype=np.float32))


def _patched_wav(tmp_path, name, offset, fmt, value):
    """A valid 8 kHz WAV whose header field at ``offset`` is overwritten (a lying header)."""
    import struct

    path = tmp_path / name
    soundfile.write(path, np.zeros(8000, dtype=np.int16), 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


def test_implausible_headers_are_refused_before_any_decoding(tmp_path):
    """An 88 KB WAV declaring 1 Hz would be 12 hours of audio once resampled; 65,535 channels
    broke the mixdown; both fail alone, at once, writing nothing."""
    slow = _patched_wav(tmp_path, "one-hertz.wav", 24, "<I", 1)
    wide = _patched_wav(tmp_path, "wide.wav", 22, "<H", 65535)
    with pytest.raises(DecodeError, match=r"one-hertz.wav: its header declares a sample rate of 1 Hz"):
        store_audio(slow, {(22050, "mono")}, tmp_path)
    with pytest.raises(DecodeError, match=r"wide.wav: its header declares 65535 channels \(1 to 64"):
        store_audio(wide, {(22050, "mono")}, tmp_path)
    song = tmp_path / "song.wav"
    soundfile.write(song, np.zeros(8000 * 30, dtype=np.float32), 8000)
    with pytest.raises(DecodeError, match=r"declares 30 s of audio, longer than the 10 s allowed \(resources.max_duration\)"):
        store_audio(song, {(22050, "mono")}, tmp_path, max_duration=10)
    assert not list(tmp_path.glob("*.f32"))


def test_compressed_formats_decode(tmp_path):
    for fmt, name in (("FLAC", "a.flac"), ("OGG", "a.ogg")):
        path = tmp_path / name
        soundfile.write(path, click_track(1.0, [0.5]), 22050, format=fmt)
        assert abs(decode(path).duration - 1.0) < 0.01


@pytest.mark.parametrize("layout", ["mono", "all"])
def test_a_chunk_is_silent_below_the_floor_as_its_double_precision_level_says(layout):
    """is_silent sums the energy in single precision (fast); it must agree with rms_db's
    double-precision level on each side of the floor, for one channel and for several."""
    from mirflow.audio import Chunk, rms_db

    rate = 44100
    tone = np.sin(2 * np.pi * 440 * np.arange(120 * rate) / rate).astype(np.float32)
    for level_db in (-69.9, -70.1, -20.0, -100.0):
        samples = tone * np.float32(10 ** (level_db / 20) * np.sqrt(2))  # RMS at level_db
        if layout == "all":
            samples = np.stack([samples, samples])
        chunk = Chunk(index=0, start=0.0, end=120.0, core_start=0.0, core_end=120.0, samples=samples,
                      sample_rate=rate, path="tone.wav")
        assert chunk.is_silent() == (rms_db(samples) < -70.0) == (level_db < -70.0)
    for samples in (np.zeros(1000, np.float32), np.zeros(0, np.float32)):
        assert Chunk(index=0, start=0.0, end=1.0, core_start=0.0, core_end=1.0, samples=samples,
                     sample_rate=rate, path="zeros.wav").is_silent()


@pytest.mark.parametrize("name, subtype", [("long.wav", "FLOAT"), ("long.flac", "PCM_16")])
def test_a_decode_that_stops_early_leaves_no_reader_thread_behind(tmp_path, name, subtype):
    """Blocks are read a few ahead in a thread (a FLAC's by two threads): a decode stopped
    (cancelled) or failing half-way must end those threads too, and the file's blocks must
    arrive whole and in order."""
    import threading

    path = tmp_path / name
    samples = (np.random.default_rng(1).standard_normal((22050 * 65, 1)) * 0.1).astype(np.float32)
    soundfile.write(path, samples, 22050, subtype=subtype)
    samples, _ = soundfile.read(path, dtype="float32", always_2d=True)  # as stored (16 bits for FLAC)
    stored = store_audio(path, {(None, "mono")}, tmp_path)
    np.testing.assert_array_equal(stored.samples(None, "mono"), samples[:, 0])  # seven blocks, in order
    stored.remove()
    before = threading.active_count()
    stop = threading.Event()
    stop.set()
    with pytest.raises(DecodeError, match="decoding stopped"):
        store_audio(path, {(None, "mono"), (11025, "mono")}, tmp_path, stop=stop)
    assert threading.active_count() == before and not list(tmp_path.glob("*.f32"))
