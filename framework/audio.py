"""Decode once, mix down and resample once per wanted rate, and plan chunks.

No analyzer decodes on its own: the runner decodes each file here, and every
analyzer that wants the same (sample rate, channel layout) shares one array.
All audio handed to analyzers is float32 (madmom caches its FFT window on a
processor's first call, so mixing dtypes across files gives garbage silently).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DecodeError(Exception):
    """An input that cannot be read as audio; the message names the file."""


@dataclass(frozen=True)
class ChunkSpan:
    """Where a chunk lies in the track, and the core region it owns.

    Neighbouring chunks overlap; each overlap is split at its middle, so the core
    regions tile the track without gaps or doubles.
    """

    index: int
    start: float
    end: float
    core_start: float
    core_end: float

    def owns(self, time: float, last: bool) -> bool:
        """Whether an event at ``time`` belongs to this chunk (half-open, last closed)."""
        if last:
            return self.core_start <= time <= self.core_end
        return self.core_start <= time < self.core_end


def plan_chunks(
    duration: float,
    *,
    enabled: bool = True,
    min_duration: float = 60.0,
    length: float = 120.0,
    overlap: float = 10.0,
) -> list[ChunkSpan]:
    """Split ``duration`` seconds into chunks of ``length`` with ``overlap``.

    Files not longer than ``min_duration`` (or with chunking off) are one chunk. The
    last chunk may be shorter than ``length``; it always reaches past the overlap.
    """
    if not enabled or duration <= min_duration or duration <= length:
        return [ChunkSpan(0, 0.0, duration, 0.0, duration)]
    step = length - overlap
    count = max(1, math.ceil((duration - overlap) / step))
    starts = [i * step for i in range(count)]
    ends = [min(start + length, duration) for start in starts]
    spans = []
    for i in range(count):
        core_start = 0.0 if i == 0 else (starts[i] + ends[i - 1]) / 2
        core_end = duration if i == count - 1 else (starts[i + 1] + ends[i]) / 2
        spans.append(ChunkSpan(i, starts[i], ends[i], core_start, core_end))
    return spans


@dataclass
class Chunk:
    """The audio of one chunk as one analyzer wants it, plus where it lies.

    ``samples`` is float32, 1-D for mono or (channels, samples) for ``all``; it is a
    view into the shared track array, not a copy. ``start`` is the exact time of
    its first sample.
    """

    index: int
    start: float
    end: float
    core_start: float
    core_end: float
    samples: np.ndarray
    sample_rate: int
    path: str
    cache_prefix: str | None = None  # where mirflow.features keeps this track's shared features

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / self.sample_rate

    def is_silent(self, floor_db: float = -70.0) -> bool:
        """True when the chunk's RMS is below ``floor_db`` dBFS (digital silence, hum-free).

        The energy is a single-precision dot product (BLAS: ~1 ms per 120 s chunk), not
        :func:`rms_db`'s double-precision squares (~14 ms: every step of every chunk asks,
        ~1.8 s of CPU per hour of audio with the default pipeline). Its rounding (~1e-5 of
        the energy) could only matter within ~1e-4 dB of the floor."""
        samples = self.samples
        if samples.size == 0:
            return True
        flat = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        mean = float(np.dot(flat, flat)) / flat.size
        return not (mean > 0 and 10 * math.log10(mean) >= floor_db)


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


@dataclass
class Decoded:
    """A whole file in memory: float32 samples shaped (frames, channels). For small jobs
    such as plotting; analysis goes through :func:`store_audio`, which never holds a
    whole long file in memory."""

    path: str
    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


LEVEL_TARGET = -18.0  # dBFS RMS of the whole track, for analyzers that ask for a normalized level
MAX_LEVEL_GAIN = 30.0  # dB: a near-silent recording is not blown up to full level


@dataclass(frozen=True)
class StoredAudio:
    """A decoded file laid out as raw float32 files, one per (rate, layout) the pipeline
    wants; every worker maps them read-only, so chunks travel without copies."""

    path: str
    duration: float
    sample_rate: int
    channels: int
    arrays: dict  # "rate/layout" -> (raw file, frames, channels)
    rms_db: float = -math.inf  # the whole track's RMS level (mono mix), dBFS
    notes: tuple[str, ...] = ()  # what the decode found wrong but could read (a truncated file)

    def level_gain(self) -> float:
        """The factor that brings the track's RMS to LEVEL_TARGET (within ±MAX_LEVEL_GAIN dB)."""
        if not math.isfinite(self.rms_db):
            return 1.0
        return 10 ** (min(MAX_LEVEL_GAIN, max(-MAX_LEVEL_GAIN, LEVEL_TARGET - self.rms_db)) / 20)

    def samples(self, sample_rate: int | None, layout: str) -> np.ndarray:
        """The whole track as wanted: 1-D for mono, (channels, frames) for all."""
        raw, frames, channels = self.arrays[audio_key(sample_rate or self.sample_rate, layout)]
        if frames == 0:
            return np.zeros((channels, 0) if layout == "all" else 0, dtype=np.float32)
        data = np.memmap(raw, dtype=np.float32, mode="r", shape=(frames, channels))
        return data[:, 0] if layout == "mono" else data.T

    def chunk(self, span: ChunkSpan, sample_rate: int | None, layout: str, normalized: bool = False) -> Chunk:
        """A view of one span of the track as one analyzer wants it; ``normalized``: a copy
        scaled by the track's ``level_gain`` (the same factor for every chunk, so a chunked
        run still equals a whole-file one)."""
        rate = sample_rate or self.sample_rate
        data = self.samples(rate, layout)
        first = int(round(span.start * rate))
        last = int(round(span.end * rate))
        samples, prefix = data[..., first:last], self.cache_prefix(rate, layout)
        if normalized:  # features computed from it are not those of the raw level: their own cache names
            samples, prefix = np.multiply(samples, np.float32(self.level_gain()), dtype=np.float32), f"{prefix}-level"
        return Chunk(index=span.index, start=first / rate, end=span.end, core_start=span.core_start,
                     core_end=span.core_end, samples=samples, sample_rate=rate, path=self.path, cache_prefix=prefix)

    def track(self) -> Decoded:
        """The whole track without a copy (a read-only view of the stored array at the file's
        own rate if there is one, mono first), for the plot's waveform after the analysis."""
        rate, layout = min((key.split("/") for key in self.arrays),
                           key=lambda k: (int(k[0]) != self.sample_rate, k[1] != "mono"))
        data = self.samples(int(rate), layout)
        return Decoded(self.path, data[:, None] if layout == "mono" else data.T, int(rate))

    def cache_prefix(self, sample_rate: int, layout: str) -> str:
        """Where mirflow.features keeps this track's shared features: beside its raw file."""
        return self.arrays[audio_key(sample_rate, layout)][0][: -len(".f32")]

    def remove(self) -> None:
        """Delete the raw audio and the features shared beside it."""
        for raw, _, _ in self.arrays.values():
            raw = Path(raw)
            for pattern in (f"{raw.stem}.*.npy", f"{raw.stem}.*.lock"):
                for feature in raw.parent.glob(pattern):
                    feature.unlink(missing_ok=True)
            raw.unlink(missing_ok=True)


def audio_key(sample_rate: int, layout: str) -> str:
    return f"{sample_rate}/{layout}"


BLOCK_SECONDS = 10.0  # decode and resample this much at a time: memory does not grow with length
MIN_RATE, MAX_RATE = 1000, 768_000  # Hz: sample rates a real recording has
MAX_CHANNELS = 64
MAX_DURATION = 6 * 3600.0  # seconds, unless the pipeline says otherwise (resources.max_duration)


def raw_prefix(path: str | Path) -> str:
    """The start of the raw files' names of ``path`` in a scratch folder (one per rate and layout)."""
    return hashlib.sha1(str(path).encode()).hexdigest()[:12]


def store_audio(path: str | Path, wanted, directory: str | Path, quality: str = "HQ",
                max_duration: float = MAX_DURATION, stop=None) -> StoredAudio:
    """Decode ``path`` block by block into raw float32 files under ``directory``.

    ``wanted`` is a set of (sample rate or None, layout). Each block is mixed down and
    resampled (streaming, so the result equals one pass over the file) once per wanted
    rate; the file is read once, whatever the number of analyzers. The header is checked
    first (sample rate, channels, a duration up to ``max_duration``), and the frames as
    they come: a small file cannot demand unbounded work or disk. ``stop`` (a
    threading.Event) ends a decode running in a thread between two blocks (a process is
    simply killed).
    """
    path = str(path)
    directory = Path(directory)
    blocks, rate, channels = _open_blocks(path, max_duration)
    targets = {}
    for sample_rate, layout in sorted(wanted, key=str):
        key = audio_key(sample_rate or rate, layout)
        if key in targets:
            continue
        width = channels if layout == "all" else 1
        raw = directory / f"{raw_prefix(path)}-{(sample_rate or rate)}-{layout}.f32"
        stream = None
        if (sample_rate or rate) != rate:
            import soxr

            stream = soxr.ResampleStream(rate, sample_rate, width, dtype="float32", quality=quality)
        targets[key] = {"raw": raw, "handle": open(raw, "wb"), "stream": stream, "layout": layout,
                        "frames": 0, "width": width}
    frames, energy = 0, 0.0
    reading = _read_ahead(blocks)
    try:
        for block in reading:
            if stop is not None and stop.is_set():
                raise DecodeError(f"{path}: decoding stopped (cancelled)")
            # The mix once per block for every mono target (a mono file's block is its own mix);
            # a NaN or infinity in any channel makes the mix's energy one too, so only then is
            # every sample looked at (~10 % of a long decode).
            mono = mix(block)
            block_energy = float(np.sum(np.square(mono, dtype=np.float64)))
            if not math.isfinite(block_energy) and not np.all(np.isfinite(block)):
                raise DecodeError(f"{path}: contains NaN or infinite samples")
            frames += len(block)
            energy += block_energy
            if frames > max_duration * rate:
                raise DecodeError(f"{path}: longer than {_hours(max_duration)} of audio (resources.max_duration)")
            _write_block(targets, block, mono, last=False)
        if frames == 0:
            raise DecodeError(f"{path}: contains no audio samples")
        empty = np.zeros((0, channels), dtype=np.float32)
        _write_block(targets, empty, empty[:, :1], last=True)
    except BaseException:
        for target in targets.values():
            target["handle"].close()
            target["raw"].unlink(missing_ok=True)
        raise
    finally:
        reading.close()  # the reader thread ends with the decode, however it ends
    for target in targets.values():
        target["handle"].close()
    arrays = {key: (str(t["raw"]), t["frames"], t["width"]) for key, t in targets.items()}
    rms_db = 10 * math.log10(energy / frames) if energy > 0 else -math.inf
    from .wavheader import shortfall_note

    note = shortfall_note(path, frames / rate)
    return StoredAudio(path=path, duration=frames / rate, sample_rate=rate, channels=channels, arrays=arrays,
                       rms_db=rms_db, notes=(note,) if note else ())


def mix(block: np.ndarray) -> np.ndarray:
    """A (frames, channels) float32 block's mono mix, (frames, 1): the channels' mean as NumPy's
    ``mean(axis=1)`` computes it. Two channels as one addition and one halving, the same
    numbers (the sum of two is one rounding, whatever the order; the halving is exact): NumPy's
    reduction along rows of two is ~8x slower, ~4 s of one core for a stereo hour. The decode
    of a stereo 60-minute 16-bit WAV, which every chunk waits for: 5.3-6.0 -> 1.5 s (this and
    :func:`_scaled`)."""
    if block.shape[1] == 1:
        return block
    if block.shape[1] == 2:
        mono = np.add(block[:, 0], block[:, 1])
        mono /= np.float32(2)
        return mono[:, None]
    return block.mean(axis=1, dtype=np.float32, keepdims=True)


def _offer(ahead, item, done) -> bool:
    """Put ``item`` on the queue ``ahead`` unless ``done`` is set first (then False)."""
    import queue

    while not done.is_set():
        try:
            ahead.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def _interleaved(path: str, blocksize: int, frames: int, readers: int = 2):
    """A FLAC file's float32 blocks decoded by ``readers`` threads, each with its own handle
    (block k by reader k % readers), yielded in order: FLAC's decoder is the slowest part of
    its decode (~5 s of one core for a stereo hour, which every chunk waits for), and seeking in
    FLAC is exact to the sample, so these are the blocks one reader would give. Stops at the
    first short block, as one reader does; a file longer than its header says is read on to its
    end by one reader. A stereo 60-minute FLAC's decode: 5.9-6.6 -> 3.7-4.3 s."""
    import queue
    import threading

    import soundfile

    count = -(-frames // blocksize)
    queues = [queue.Queue(maxsize=2) for _ in range(readers)]
    done = threading.Event()

    def read(reader: int):
        try:
            with soundfile.SoundFile(path) as source:
                for index in range(reader, count, readers):
                    source.seek(index * blocksize)
                    block = source.read(blocksize, dtype="float32", always_2d=True)
                    if not _offer(queues[reader], (block, None), done) or len(block) < blocksize:
                        return
        except BaseException as err:
            _offer(queues[reader], (None, err), done)

    threads = [threading.Thread(target=read, args=(k,), name=f"mirflow-read-{k}", daemon=True)
               for k in range(readers)]
    for thread in threads:
        thread.start()
    try:
        for index in range(count):
            block, error = queues[index % readers].get()
            if error is not None:
                raise error
            if len(block):
                yield block
            if len(block) < blocksize:
                return
    finally:
        done.set()
        for thread in threads:
            thread.join()
    with soundfile.SoundFile(path) as source:  # past what the header declared, if anything is
        source.seek(count * blocksize)
        yield from source.blocks(blocksize=blocksize, dtype="float32", always_2d=True)


def _read_ahead(blocks, depth: int = 2):
    """``blocks`` read in a thread, up to ``depth`` ahead of the caller: reading (libsndfile,
    which releases the GIL) runs beside resampling and writing (the 60-minute WAV's decode
    unit: 2.5-2.8 -> 2.1-2.2 s). The reader's errors come out where its block would have; a
    caller that stops early stops the reader too."""
    import queue
    import threading

    ahead: queue.Queue = queue.Queue(maxsize=depth)
    done = threading.Event()

    def read():
        try:
            for block in blocks:
                if not _offer(ahead, (block, None), done):
                    return
            _offer(ahead, (None, None), done)
        except BaseException as err:
            _offer(ahead, (None, err), done)
        finally:
            getattr(blocks, "close", lambda: None)()  # a generator's own threads and files end here

    reader = threading.Thread(target=read, name="mirflow-read", daemon=True)
    reader.start()
    try:
        while True:
            block, error = ahead.get()
            if error is not None:
                raise error
            if block is None:
                return
            yield block
    finally:
        done.set()
        reader.join()


def _write_block(targets: dict, block: np.ndarray, mono: np.ndarray, last: bool) -> None:
    for target in targets.values():
        data = block if target["layout"] == "all" else mono
        if target["stream"] is not None:
            data = target["stream"].resample_chunk(np.ascontiguousarray(data), last=last)
        data = np.ascontiguousarray(data, dtype=np.float32).reshape(-1, target["width"])
        target["handle"].write(data)  # its buffer, without a copy
        target["frames"] += len(data)


def _open_blocks(path: str, max_duration: float = MAX_DURATION):
    """(iterator of float32 (frames, channels) blocks, sample rate, channels), after the
    header's sample rate, channel count and duration are checked."""
    if not Path(path).is_file():
        raise DecodeError(f"{path}: no such file")
    if Path(path).stat().st_size == 0:
        raise DecodeError(f"{path}: the file is empty (0 bytes)")
    try:
        import soundfile

        info = soundfile.info(path)
        header = (info.samplerate, info.channels, info.frames / info.samplerate if info.samplerate > 0 else 0.0)
    except Exception as first_error:
        try:
            source = _audioread_source(path)
        except Exception:
            raise DecodeError(f"{path}: cannot decode audio ({_reason(first_error, path)})") from None
        _check_header(path, source.samplerate, source.channels, source.duration or 0.0, max_duration, source)
        return _audioread_blocks(source), source.samplerate, source.channels
    _check_header(path, *header, max_duration)
    blocksize = max(1024, int(BLOCK_SECONDS * info.samplerate))
    if info.format in PCM_FILES and info.subtype == "PCM_16":
        blocks = _scaled(soundfile.blocks(path, blocksize=blocksize, dtype="int16", always_2d=True))
    elif info.format == "FLAC" and info.frames > 4 * blocksize:
        blocks = _interleaved(path, blocksize, info.frames)
    else:
        blocks = soundfile.blocks(path, blocksize=blocksize, dtype="float32", always_2d=True)
    return _guarded(blocks, path), info.samplerate, info.channels


PCM_FILES = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "AU"}  # uncompressed: samples stored as they are


def _scaled(blocks):
    """16-bit blocks as libsndfile's float32 ones (each sample times 2^-15: exact, so the
    same numbers): libsndfile converts them ~3x slower than reading them as they are stored
    and scaling here (a mono 60-minute 16-bit WAV: ~0.7 -> ~0.22 CPU-s; its decode 2.3-2.4 ->
    1.8 CPU-s). Compressed files (FLAC, Ogg, MP3) decode to float32 no slower than to 16 bits."""
    for block in blocks:
        yield np.multiply(block, np.float32(1 / 32768), dtype=np.float32)


def read_blocks(path: str | Path) -> tuple:
    """(iterator of float32 (frames, channels) blocks, sample rate, channels): a file read
    piece by piece, with the decoder's checks and one-line errors (for ``mirflow sonify``)."""
    return _open_blocks(str(path))


def _check_header(path: str, rate: int, channels: int, duration: float, max_duration: float, source=None) -> None:
    problem = None
    if not MIN_RATE <= rate <= MAX_RATE:
        problem = f"its header declares a sample rate of {rate} Hz (audio of {MIN_RATE} to {MAX_RATE} Hz is accepted)"
    elif not 1 <= channels <= MAX_CHANNELS:
        problem = f"its header declares {channels} channels (1 to {MAX_CHANNELS} are accepted)"
    elif duration > max_duration:
        problem = (f"its header declares {_hours(duration)} of audio, longer than the {_hours(max_duration)} "
                   "allowed (resources.max_duration)")
    if problem:
        if source is not None:
            source.close()
        raise DecodeError(f"{path}: {problem}")


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _guarded(blocks, path):
    try:
        yield from blocks
    except DecodeError:
        raise
    except Exception as err:
        raise DecodeError(f"{path}: cannot decode audio ({_reason(err, path)})") from None


def _audioread_source(path: str):
    import audioread

    return audioread.audio_open(path)


def _audioread_blocks(source):
    channels = source.channels
    with source:
        for data in source:
            pcm = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
            yield pcm[: len(pcm) - len(pcm) % channels].reshape(-1, channels)


def _reason(error: Exception, path: str) -> str:
    """The library's words without the path (the message starts with it already)."""
    text = str(error)
    if "possibly a pipe" in text:  # libsndfile's words for a regular file it cannot parse
        return "not an audio format it can read"
    for quoted in (repr(path), f'"{path}"', f"'{path}'"):
        text = text.replace(quoted, "the file")
    return text.replace(path, "the file").strip(" :") or type(error).__name__


def decode(path: str | Path, max_duration: float = MAX_DURATION) -> Decoded:
    """The whole file in memory as float32 (same readers and errors as :func:`store_audio`)."""
    path = str(path)
    blocks, rate, channels = _open_blocks(path, max_duration)
    parts = list(blocks)
    samples = np.concatenate(parts) if parts else np.zeros((0, channels), dtype=np.float32)
    if samples.shape[0] == 0:
        raise DecodeError(f"{path}: contains no audio samples")
    if not np.all(np.isfinite(samples)):
        raise DecodeError(f"{path}: contains NaN or infinite samples")
    return Decoded(path=path, samples=samples, sample_rate=int(rate))


def check_decodable(path: str | Path, max_duration: float = MAX_DURATION) -> None:
    """Raise DecodeError unless the file opens as audio, its header passes and its first block
    decodes: a cheap check (for an upload, or before a file is hashed) ahead of the whole decode."""
    path = str(path)
    blocks, _, _ = _open_blocks(path, max_duration)
    first = next(iter(blocks), None)
    if first is None or len(first) == 0:
        raise DecodeError(f"{path}: contains no audio samples")
    close = getattr(blocks, "close", None)
    if close:
        close()

