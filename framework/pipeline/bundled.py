"""The pipelines shipped with mirflow, and finding a pipeline by name or path."""

from __future__ import annotations

from pathlib import Path


def bundled_pipelines() -> dict[str, Path]:
    """Name -> path of the pipelines shipped in ``pipelines/``."""
    from importlib.resources import files

    folder = files("mirflow.bundled_pipelines")
    return {Path(str(item)).stem: Path(str(item)) for item in folder.iterdir() if str(item).endswith(".yaml")}


def find_pipeline(argument: str | Path) -> Path:
    """A pipeline file path, or the name of a bundled pipeline (``default``); LookupError
    with a one-line message otherwise."""
    path = Path(argument)
    if path.is_file():
        return path
    bundled = bundled_pipelines()
    if str(argument) in bundled:
        return bundled[str(argument)]
    if path.suffix in (".yaml", ".yml") or "/" in str(argument):
        raise LookupError(f"{argument}: no such pipeline file")
    names = ", ".join(sorted(bundled))
    raise LookupError(f"{argument}: no pipeline file or bundled pipeline of that name (bundled: {names})")
