"""formats: the result files mirflow writes beside the JSON — JAMS, lab, csv and the timeline
picture — registered through ``register_exporters`` exactly as a third party's format is.

The JSON is the result itself (what resume reads), so it is the core's; everything else is a
format like any other: ``--disable-plugin formats`` leaves only ``json`` (and the formats of
other plugins, such as ``mid``). The writers live in :mod:`mirflow.exports`, where the server
and the Python API also read JAMS from.
"""

from __future__ import annotations

import mirflow


@mirflow.hookimpl
def register_exporters(register):
    from mirflow.exports import export_csv, export_jams, export_lab, export_png

    for name, exporter in (("jams", export_jams), ("lab", export_lab), ("csv", export_csv), ("png", export_png)):
        register(name, exporter)
