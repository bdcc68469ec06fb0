"""Meta-tests: every hook and descriptor is documented, every hook is exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

from mirflow import hookspecs
from mirflow.pipeline.schema import DESCRIPTORS, TOP_KEYS

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in vars(hookspecs).items() if inspect.isfunction(fn) and hasattr(fn, "mirflow_spec")]


def test_every_hook_is_documented_under_its_signature():
    text = (ROOT / "docs" / "plugins.md").read_text()
    assert len(HOOKS) >= 4
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"### `{name}({params})`" in text, name


def test_every_hook_is_used_by_a_test():
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.name != "test_docs.py")
    for name in HOOKS:
        assert f"def {name}(" in tests, name


def test_every_pipeline_key_and_descriptor_is_in_the_yaml_reference():
    text = (ROOT / "docs" / "pipelines.md").read_text()
    for key in TOP_KEYS:
        assert f"`{key}" in text, key
    for descriptor in DESCRIPTORS:
        assert f"| `{descriptor}` |" in text, descriptor


def test_every_package_folder_is_listed_for_installation():
    """An editable install finds subpackages anyway; a wheel holds only the listed ones."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((package, *parts)) in listed, init.parent


def test_every_analyzer_has_its_licences_in_the_install_docs_and_commercial_runs_no_nc_model():
    from mirflow.cli.common import bundled_pipelines
    from mirflow.pipeline import load_pipeline
    from mirflow.plugin_manager import collect_analyzers, make_plugin_manager

    registry = collect_analyzers(make_plugin_manager())
    text = (ROOT / "docs" / "install.md").read_text()
    table = text[text.index("## Licences of the models"):]
    table = table[:table.index("\n\n", table.index("| analyzer |"))]
    for name in registry.names():
        cls = registry.get(name)
        row = next((line for line in table.splitlines()
                    if f"`{name}`" in line or f"`{name.split('.')[0]}.*`" in line
                    or f"`.{name.split('.')[1]}`" in line and f"`{name.split('.')[0]}." in line), None)
        assert row is not None, name
        assert cls.code_licence and cls.code_licence.split(" ")[0] in row, name
        assert (cls.model_licence is None and "no trained model" in row) or (
            cls.model_licence and cls.model_licence.split(" (")[0] in row), name
    commercial = load_pipeline(bundled_pipelines()["commercial"], registry)
    for step in commercial.steps:
        assert "NC" not in (registry.get(step.analyzer).model_licence or ""), step.analyzer


def test_readme_is_a_front_door_and_its_links_resolve():
    """The README stays a newcomer's page (reference and tables live in docs/), and every page
    it or a docs page links to exists."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_every_benchmark_table_has_one_page_to_land_in():
    """Each benchmark's --write finds its <!-- marker --> in exactly one page."""
    import re

    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    texts = {page: page.read_text() for page in pages}
    markers = set()
    for script in (ROOT / "benchmarks").glob("*.py"):
        markers |= set(re.findall(r'publish\([^,]+,\s*"([\w-]+)"', script.read_text()))
    assert len(markers) >= 10
    for marker in markers:
        holders = [page.name for page, text in texts.items() if f"<!-- {marker} -->" in text]
        assert len(holders) == 1, (marker, holders)


def test_every_test_named_in_the_faults_page_exists():
    """docs/faults.md promises what mirflow does under faults, each line naming the test that
    holds it (file::name): a renamed or removed test must take its promise with it."""
    import re

    text = (ROOT / "docs" / "faults.md").read_text()
    named = re.findall(r"(tests/test_\w+\.py)::(test_\w+)", text)
    assert len(named) >= 40
    for file, name in named:
        path = ROOT / file
        assert path.is_file(), f"docs/faults.md names {file}, which does not exist"
        assert re.search(rf"^def {name}\(", path.read_text(), re.M), f"docs/faults.md names {file}::{name}, not defined"
