"""``mirflow serve``: the analysis API (FastAPI, Server-Sent Events) and the live timeline page.

- :mod:`.jobs` — a job's numbered events and result, and the bounded store of jobs;
- :mod:`.engine` — one long-lived scheduler per pipeline, fed as uploads arrive;
- :mod:`.app` — the HTTP endpoints, upload limits and the page under ``static/``.

Needs the ``server`` extra; nothing here is imported unless the server runs.
"""
