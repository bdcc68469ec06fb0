"""Running zoo models: mel patches in the CPU lane (Essentia), graphs in the GPU lane (TensorFlow).

The CPU half uses Essentia's own ``TensorflowInputMusiCNN`` / ``TensorflowInputTempoCNN``
bands (what the models were trained on) and cuts them into the model's patches. The GPU
half imports TensorFlow only in the GPU-lane worker (a spawned process that never imports
Essentia: TensorFlow before Essentia aborts a process), loads each graph once, lets GPU
memory grow as needed, and runs all patches of a batch of chunks (from any files) at once,
padding to a graph's fixed batch (64 for effnet) and dropping the padding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .zoo import EFFNET, FAMILIES, TEMPOCNN, ModelInfo

FRAMES = {EFFNET: (512, 256), "msd-musicnn-1": (512, 256), TEMPOCNN: (1024, 512)}  # frame, hop (samples)


def mel_patches(samples: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    """(patches: n x frames x bands float32, centre time of each patch in s)."""
    import essentia.standard as es

    frame_size, hop = FRAMES[family]
    known = FAMILIES[family]
    length, bands = known["patch"]
    rate = known["rate"]
    extract = es.TensorflowInputTempoCNN() if family == TEMPOCNN else es.TensorflowInputMusiCNN()
    frames = [extract(frame) for frame in es.FrameGenerator(np.ascontiguousarray(samples, dtype=np.float32),
                                                            frameSize=frame_size, hopSize=hop, startFromZero=True)]
    spectrogram = np.array(frames, dtype=np.float32).reshape(-1, bands)
    if len(spectrogram) < length:  # a short chunk: one patch, zero-padded as Essentia does
        spectrogram = np.vstack([spectrogram, np.zeros((length - len(spectrogram), bands), np.float32)])
    starts = np.arange(0, len(spectrogram) - length + 1, known["hop"])
    patches = np.stack([spectrogram[s:s + length] for s in starts]).astype(np.float32)
    centres = (starts + length / 2) * hop / rate
    return patches, centres


class Graph:
    """One frozen zoo graph, loaded once, run in batches."""

    loads = 0  # graphs loaded in this process (tests check models load once per worker)

    def __init__(self, path: Path, input_name: str, output_names: list[str], fixed_batch: int | None):
        import tensorflow as tf

        Graph.loads += 1
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(Path(path).read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        options = tf.compat.v1.GPUOptions(allow_growth=True)  # grow as needed, not the whole card
        self.session = tf.compat.v1.Session(graph=self.graph, config=tf.compat.v1.ConfigProto(gpu_options=options))
        self.input = _tensor(input_name)
        self.outputs = [_tensor(name) for name in output_names]
        self.fixed_batch = fixed_batch
        shape = self.graph.get_tensor_by_name(self.input).shape
        self.input_shape = [d for d in shape.as_list()[1:]] if shape.rank else None

    def __call__(self, patches: np.ndarray) -> list[np.ndarray]:
        """Each output for all ``patches`` (run in slices of the fixed batch, padded)."""
        patches = self._layout(patches)
        if not self.fixed_batch:
            return [np.asarray(v) for v in self.session.run(self.outputs, {self.input: patches})]
        results = []
        for first in range(0, len(patches), self.fixed_batch):
            part = patches[first:first + self.fixed_batch]
            padded = np.concatenate([part, np.zeros((self.fixed_batch - len(part),) + part.shape[1:], part.dtype)])
            values = self.session.run(self.outputs, {self.input: padded})
            results.append([np.asarray(v)[:len(part)] for v in values])
        return [np.concatenate([r[i] for r in results]) for i in range(len(self.outputs))]

    def _layout(self, patches: np.ndarray) -> np.ndarray:
        """Patches (n x frames x bands) in the layout the graph's input wants: as they are,
        bands first (TempoCNN), with a trailing channel axis when the input has one."""
        if not self.input_shape or patches.ndim < 3:
            return patches
        want = self.input_shape
        if len(want) == 3 and want[-1] == 1:
            if want[0] == patches.shape[2] and want[0] != patches.shape[1]:
                patches = patches.transpose(0, 2, 1)
            return patches[..., None]
        return patches


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def devices(requested: str) -> str:
    """The device TensorFlow will really use: 'gpu' when it sees one (and it was not refused),
    else 'cpu'; ``requested == 'gpu'`` with none visible is an error, never a silent fallback."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if requested == "gpu" and not gpus:
        from mirflow.devices import gpu_problem

        from .backends import TENSORFLOW

        raise RuntimeError("device: gpu was asked for, but TensorFlow sees no GPU: "
                           f"{gpu_problem('tensorflow', TENSORFLOW)}")
    if requested == "cpu":
        tf.config.set_visible_devices([], "GPU")
        return "cpu"
    return "gpu" if gpus else "cpu"


def load(info: ModelInfo, embedding: ModelInfo | None) -> dict:
    """The graphs a model needs: its extractor (embeddings or predictions) and, for a head,
    the head on top."""
    if info.family == "head":
        extractor = Graph(embedding.graph, embedding.input, [embedding.embeddings],
                          FAMILIES[embedding.family]["fixed_batch"])
        return {"extractor": extractor, "head": Graph(info.graph, info.input, [info.output], None)}
    return {"extractor": Graph(info.graph, info.input, [info.output], FAMILIES[info.family]["fixed_batch"])}
