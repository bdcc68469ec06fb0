"""Plugin manager factory and analyzer registry.

Built-in plugins and third-party ones are found the same way: entry points of the
group ``mirflow``. Nothing is loaded at import time; callers build a manager.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .analyzer import Analyzer, check_analyzer_class
from .exports import CORE_EXPORTERS, Exporter

ENTRY_POINT_GROUP = "mirflow"


class PluginError(Exception):
    """A plugin that cannot be used as registered (duplicate or malformed analyzer)."""


@dataclass
class Registry:
    """Every registered analyzer class by dotted name, and which plugin gave it; the result
    formats (built-in and from plugins)."""

    analyzers: dict[str, type[Analyzer]] = field(default_factory=dict)
    plugin_of: dict[str, str] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)
    exporters: dict[str, Exporter] = field(default_factory=lambda: dict(CORE_EXPORTERS))

    def get(self, name: str) -> type[Analyzer]:
        return self.analyzers[name]

    def names(self) -> list[str]:
        return sorted(self.analyzers)


def make_plugin_manager(
    *, load_entry_points: bool = True, disabled: tuple[str, ...] | list[str] = ()
) -> pluggy.PluginManager:
    """A fresh manager with mirflow's hookspecs and the installed plugins.

    ``MIRFLOW_PLUGINS`` (comma-separated entry-point names) limits which plugins load;
    ``disabled`` (and ``--disable-plugin``) leaves some out. A plugin whose module fails
    to import is recorded in ``pm.mirflow_load_errors`` instead of breaking the others.
    """
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    pm.mirflow_load_errors = {}
    pm.mirflow_entry_points = set()  # names of plugins loaded from entry points (workers load them too)
    if load_entry_points:
        only = os.environ.get("MIRFLOW_PLUGINS")
        allowed = {name.strip() for name in only.split(",") if name.strip()} if only else None
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as err:  # a broken plugin must not take the others down
                pm.mirflow_load_errors[ep.name] = f"{type(err).__name__}: {err}"
                continue
            pm.register(plugin, name=ep.name)
            pm.mirflow_entry_points.add(ep.name)
    pm.check_pending()
    return pm


def collect_analyzers(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin for its analyzers; reject duplicates and malformed classes."""
    registry = Registry(load_errors=dict(getattr(pm, "mirflow_load_errors", {})))
    for impl in pm.hook.register_analyzers.get_hookimpls():

        def register(cls, _plugin=impl.plugin_name):
            try:
                check_analyzer_class(cls)
            except TypeError as err:
                raise PluginError(f"plugin {_plugin!r}: {err}") from None
            if cls.name in registry.analyzers:
                raise PluginError(
                    f"analyzer {cls.name!r} is registered by both plugin "
                    f"{registry.plugin_of[cls.name]!r} and plugin {_plugin!r}"
                )
            registry.analyzers[cls.name] = cls
            registry.plugin_of[cls.name] = _plugin

        impl.function(register=register)
    collect_exporters(pm, registry)
    return registry


def collect_exporters(pm: pluggy.PluginManager, registry: Registry) -> None:
    """Add the formats plugins register (``register_exporters``; mirflow's own jams, lab, csv
    and png among them) to the core's ``json``."""
    owner = {name: "mirflow" for name in registry.exporters}
    for impl in pm.hook.register_exporters.get_hookimpls():

        def register(name, exporter, _plugin=impl.plugin_name):
            if not isinstance(name, str) or not name.isidentifier() or not callable(exporter):
                raise PluginError(f"plugin {_plugin!r}: register_exporters needs a format name (a word) and a "
                                  f"callable, got {name!r} and {type(exporter).__name__}")
            if name in registry.exporters:
                raise PluginError(f"format {name!r} is registered by both {owner[name]!r} and plugin {_plugin!r}")
            registry.exporters[name] = exporter
            owner[name] = _plugin

        impl.function(register=register)
