"""Signal processing that analyzers share: chunk features on one frame grid (chroma, timbre,
onset envelope) and librosa's functions ported to numpy.

It lives in the core, not in a plugin, so that any plugin — mirflow's own or a third party's —
can reuse it without importing another plugin's internals. Nothing here imports librosa at
import time.
"""
