"""``mirflow table``: one row per result, stable columns, unreadable files named, three formats."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirflow.table import COLUMNS, camelot, render

MIRFLOW = str(Path(sys.executable).with_name("mirflow"))


def early_result() -> dict:
    """A schema-1 result as the first releases wrote it: no sections, form or tempo curve, and
    two steps' danceability (so the summary names them by step)."""
    return {
        "schema_version": 1, "mirflow_version": "0.1.0",
        "source": {"path": "/music/old.wav", "name": "old.wav", "duration": 200.5, "sample_rate": 44100, "channels": 2},
        "pipeline": {"name": "full", "path": "full.yaml", "hash": "x"},
        "summary": {"tempo": {"bpm": 128.0, "confidence": 0.9}, "key": {"label": "F# major", "confidence": 0.7},
                    "dance.danceability": {"value": 1.8, "confidence": None},
                    "loudness": {"value": -9.5, "confidence": None}, "mood": {"label": "happy", "confidence": 0.6}},
        "timeline": {"beats": [{"time": 0.5, "position": 1}, {"time": 0.97, "position": 2}], "downbeats": [0.5],
                     "chords": [], "keys": []},
        "errors": [{"step": "chords", "analyzer": "chords.madmom", "file": "/music/old.wav", "message": "boom"}],
    }


@pytest.fixture
def library(tmp_path, example_results) -> Path:
    """A folder as users keep them: real results, an early one in a subfolder, and files that
    are no readable result (newer schema, broken JSON, a JSON list, a hidden temp file)."""
    folder = tmp_path / "library"
    shutil.copytree(example_results, folder / "run1")
    (folder / "old" / "deep").mkdir(parents=True)
    (folder / "old" / "deep" / "old.json").write_text(json.dumps(early_result()))
    newer = json.loads((example_results / "example.json").read_text()) | {"schema_version": 99}
    (folder / "newer.json").write_text(json.dumps(newer))
    (folder / "broken.json").write_text('{"schema_version": 1, "source": ')
    (folder / "list.json").write_text("[1, 2]")
    (folder / "run1" / ".example.json.abc.tmp.json").write_text("{")
    return folder


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([MIRFLOW, "table", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_a_folder_becomes_one_row_per_result_and_the_others_are_named(library, tmp_path):
    done = run(library, "-o", tmp_path / "library.csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "library.csv").read_text())))
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 2
    example, old = sorted(rows, key=lambda r: r["name"])
    assert float(example["tempo"]) == pytest.approx(100, abs=1) and example["key"] == "A minor"
    assert example["camelot"] == "8A" and example["time_signature"] == "4/4" and example["errors"] == "0"
    assert int(example["beats"]) > 20 and example["result"].endswith("run1/example.json")
    assert (old["tempo"], old["camelot"], old["danceability"], old["loudness"]) == ("128.0", "2B", "1.8", "-9.5")
    assert (old["sections"], old["form"], old["errors"], old["time_signature"]) == ("0", "", "1", "")
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4  # the three unreadable files, then the count
    assert any(line.startswith(f"mirflow: {library / 'newer.json'}: schema_version 99 is newer") for line in lines)
    assert any(line.startswith(f"mirflow: {library / 'broken.json'}: not JSON") for line in lines)
    assert f"mirflow: {library / 'list.json'}: not a mirflow result" in done.stderr
    assert lines[-1].endswith("library.csv: 2 rows (3 files skipped)")


def test_jsonl_with_chosen_columns_and_any_summary_entry(library, tmp_path):
    target = tmp_path / "library.jsonl"
    done = run(library / "old", library / "run1" / "example.json", "-o", target,
               "--columns", "name,camelot,summary.mood,summary.chord_changes_per_minute")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows == [{"name": "old.wav", "camelot": "2B", "summary.mood": "happy", "summary.chord_changes_per_minute": None},
                    {"name": "example.ogg", "camelot": "8A", "summary.mood": None,
                     "summary.chord_changes_per_minute": pytest.approx(24.0)}]


def test_parquet_keeps_numbers_as_numbers(library, tmp_path):
    import pyarrow.parquet

    done = run(library, "-o", tmp_path / "library.parquet")
    assert done.returncode == 0, done.stderr
    table = pyarrow.parquet.read_table(tmp_path / "library.parquet")
    assert table.num_rows == 2 and table.column_names == list(COLUMNS)
    assert str(table.schema.field("tempo").type) == "double" and str(table.schema.field("beats").type) == "int64"
    assert sorted(table.column("key").to_pylist()) == ["A minor", "F# major"]


def test_parquet_without_pyarrow_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ValueError, match=r"pip install 'mirflow\[parquet\]'"):
        render([{"path": "a"}], ["path"], ".parquet")


def test_stdout_csv_by_default_and_clear_errors(library, tmp_path):
    done = run(library / "old")
    assert done.returncode == 0 and done.stdout.splitlines()[0].startswith("path,name,duration,tempo")
    assert len(done.stdout.splitlines()) == 2
    nothing = run(library / "broken.json", library / "list.json")
    assert nothing.returncode == 1 and nothing.stderr.strip().splitlines()[-1].startswith(
        "mirflow: no mirflow result could be read in")
    suffix = run(library, "-o", tmp_path / "library.xlsx")
    assert suffix.returncode == 2 and "unknown table format '.xlsx'" in suffix.stderr
    assert not (tmp_path / "library.xlsx").exists()
    column = run(library, "--columns", "path,tempoo")
    assert column.returncode == 2 and "unknown column 'tempoo' (did you mean 'tempo'?)" in column.stderr


@pytest.mark.parametrize("key, code", [("C major", "8B"), ("A minor", "8A"), ("G major", "9B"), ("E minor", "9A"),
                                       ("F# major", "2B"), ("Eb minor", "2A"), ("Db major", "3B"), ("F major", "7B"),
                                       ("D minor", "7A"), ("G# minor", "1A"), ("B major", "1B"), ("C# minor", "12A"),
                                       ("E major", "12B"), ("C dorian", None), (None, None)])
def test_camelot_codes(key, code):
    assert camelot(key) == code
