"""Write tiny stand-ins for Essentia's zoo models: real TensorFlow graphs with the zoo's node
names and tensor shapes (random weights), and zoo-format metadata beside them.

    python tests/zoo/make_tiny_zoo.py DIR [--realistic]

Run in its own interpreter: it imports TensorFlow, which must never precede Essentia in a
process. ``--realistic`` also writes ``msd-musicnn-1`` with musicnn's layer sizes (for the
benchmark), instead of the tiny one.
"""

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

RNG = np.random.default_rng(0)


def weights(*shape):
    return tf.constant((RNG.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32))


def save(directory: Path, name: str, graph: tf.Graph, meta: dict) -> None:
    (directory / f"{name}.pb").write_bytes(graph.as_graph_def().SerializeToString())
    (directory / f"{name}.json").write_text(json.dumps({"name": name, "version": "1", **meta}, indent=1))


def musicnn(directory: Path, realistic: bool) -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96], name="model/Placeholder")
        if realistic:  # musicnn's front end: vertical and horizontal filters, then dense layers
            h = tf.expand_dims(x, -1)
            h = tf.nn.relu(tf.nn.conv2d(h, weights(7, 38, 1, 204), 1, "SAME"))
            h = tf.reduce_max(h, axis=2)
            h = tf.nn.relu(tf.nn.conv1d(h, weights(7, 204, 64), 1, "SAME"))
            h = tf.concat([tf.reduce_max(h, axis=1), tf.reduce_mean(h, axis=1)], axis=1)
            h = tf.nn.relu(tf.matmul(h, weights(128, 500)))
            embedding = tf.identity(tf.matmul(h, weights(500, 200)), name="model/dense/BiasAdd")
        else:
            embedding = tf.identity(tf.matmul(tf.reduce_mean(x, axis=1), weights(96, 200)), name="model/dense/BiasAdd")
        tf.sigmoid(tf.matmul(embedding, weights(200, 50)), name="model/Sigmoid")
    save(directory, "msd-musicnn-1", graph, {
        "type": "auto-tagging", "classes": [f"tag{i}" for i in range(50)],
        "schema": {"inputs": [{"name": "model/Placeholder", "type": "float", "shape": [187, 96]}],
                   "outputs": [{"name": "model/Sigmoid", "type": "float", "shape": [1, 50], "op": "Sigmoid",
                                "output_purpose": "predictions"},
                               {"name": "model/dense/BiasAdd", "type": "float", "shape": [1, 200],
                                "op": "fully connected", "output_purpose": "embeddings"}]},
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredictMusiCNN"}})


def effnet(directory: Path) -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [64, 128, 96], name="serving_default_melspectrogram")
        embedding = tf.matmul(tf.reduce_mean(x, axis=1), weights(96, 1280))
        styles = tf.nn.softmax(tf.matmul(embedding, weights(1280, 400)))
        tf.raw_ops.IdentityN(input=[styles, embedding], name="PartitionedCall")
    save(directory, "discogs-effnet-bs64-1", graph, {
        "type": "Music style classification", "classes": [f"Genre---Style{i}" for i in range(400)],
        "schema": {"inputs": [{"name": "serving_default_melspectrogram", "type": "float", "shape": [64, 128, 96]}],
                   "outputs": [{"name": "PartitionedCall:0", "type": "float", "shape": [64, 400],
                                "output_purpose": "predictions"},
                               {"name": "PartitionedCall:1", "type": "float", "shape": [64, 1280],
                                "output_purpose": "embeddings"}]},
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredictEffnetDiscogs"}})


def tempocnn(directory: Path) -> None:
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 40, 256, 1], name="input")
        tf.nn.softmax(tf.matmul(tf.reduce_mean(x, axis=[2, 3]), weights(40, 256)), name="output")
    save(directory, "deeptemp-k16-3", graph, {
        "type": "tempo", "classes": [str(bpm) for bpm in range(30, 286)],
        "schema": {"inputs": [{"name": "input", "type": "float", "shape": [40, 256, 1]}],
                   "outputs": [{"name": "output", "type": "float", "shape": [1, 256], "output_purpose": "predictions"}]},
        "inference": {"sample_rate": 11025, "algorithm": "TensorflowPredictTempoCNN"}})


def head(directory: Path, name: str, extractor: str, width: int, classes: list[str], genre: bool = False) -> None:
    graph = tf.Graph()
    inputs, output = ("serving_default_model_Placeholder", "PartitionedCall:0") if genre else (
        "model/Placeholder", "model/Softmax")
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, width], name=inputs)
        scores = tf.nn.softmax(tf.matmul(x, weights(width, len(classes))))
        if genre:
            tf.raw_ops.IdentityN(input=[scores], name="PartitionedCall")
        else:
            tf.identity(scores, name="model/Softmax")
    save(directory, name, graph, {
        "type": "multi-class classifier", "classes": classes,
        "schema": {"inputs": [{"name": inputs, "type": "float", "shape": [width]}],
                   "outputs": [{"name": output, "type": "float", "shape": [1, len(classes)],
                                "output_purpose": "predictions"}]},
        "inference": {"sample_rate": 16000, "algorithm": "TensorflowPredict2D",
                      "embedding_model": {"algorithm": "", "model_name": extractor}}})


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    musicnn(target, realistic="--realistic" in sys.argv)
    effnet(target)
    tempocnn(target)
    head(target, "danceability-msd-musicnn-1", "msd-musicnn-1", 200, ["danceable", "not_danceable"])
    head(target, "mood_happy-msd-musicnn-1", "msd-musicnn-1", 200, ["happy", "non_happy"])
    head(target, "mood_sad-discogs-effnet-1", "discogs-effnet-bs64-1", 1280, ["non_sad", "sad"])
    head(target, "genre_discogs400-discogs-effnet-1", "discogs-effnet-bs64-1", 1280,
         [f"Genre---Style{i}" for i in range(400)], genre=True)
    print(f"wrote {len(list(target.glob('*.pb')))} graphs to {target}")
