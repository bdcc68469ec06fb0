"""What each compute backend really sees, and why a GPU is not usable when it is not.

The backends are the plugins' own (``register_backends``): each gives a probe, Python
source run here in a fresh interpreter (importing tensorflow and essentia in one process
aborts unless essentia comes first, and a probe that crashes must not take the caller down).
``mirflow doctor`` and ``/api/health`` print these; analyzers use ``gpu_problem`` to refuse
``device: gpu`` with the precise reason instead of silently falling back to the CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What a probe may start with: ``loadable(library)`` and ``driver`` (libcuda.so.1 loads).
PRELUDE = r'''
import ctypes, json, os, sys
def loadable(name):
    try:
        ctypes.CDLL(name)
        return True
    except OSError:
        return False
driver = loadable("libcuda.so.1")
'''


class BackendError(Exception):
    """Two plugins describe one backend differently."""


def backends(pm) -> dict[str, str]:
    """name -> probe source, from every plugin's ``register_backends``."""
    found: dict[str, str] = {}
    owner: dict[str, str] = {}
    for impl in pm.hook.register_backends.get_hookimpls():

        def register(name: str, source: str, _plugin=impl.plugin_name) -> None:
            if name in found and found[name] != source:
                raise BackendError(f"backend {name!r} is described by both plugin {owner[name]!r} "
                                   f"and plugin {_plugin!r}")
            found[name], owner[name] = source, _plugin

        impl.function(register=register)
    return dict(sorted(found.items()))


def probe(source: str, timeout: float = 120) -> dict:
    """{"version", "devices", "gpu", "reason"} from one probe, or {"error": ...} when it
    fails (the backend does not import, say)."""
    try:
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"probe timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": tail[-1] if tail else f"exit code {done.returncode}"}
    result = json.loads(lines[-1])
    result["log"] = [line for line in done.stderr.splitlines()
                     if any(mark in line for mark in ("dlopen", "Could not load dynamic library", "CUDA", "cuda"))][-5:]
    return result


def probe_all(pm) -> dict[str, dict]:
    """``probe`` of every backend the installed plugins use, at once (each is its own
    interpreter): what doctor and the server's health endpoint show."""
    from concurrent.futures import ThreadPoolExecutor

    sources = backends(pm)
    if not sources:
        return {}
    with ThreadPoolExecutor(max_workers=len(sources)) as pool:
        return dict(zip(sources, pool.map(probe, sources.values())))


def gpu_problem(name: str, source: str) -> str | None:
    """None when the backend ``name`` (probed by ``source``) can use a GPU here, else why not."""
    found = probe(source)
    if "error" in found:
        return f"{name} does not import: {found['error']}"
    return None if found["gpu"] else found["reason"]
