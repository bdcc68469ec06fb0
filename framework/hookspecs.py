"""The hooks a mirflow plugin can implement.

The set is small on purpose: a plugin registers analyzers, may merge its own
analyzers' per-chunk parts, may listen to progress, may add CLI commands and result formats,
and describes the compute backends it uses (for ``mirflow doctor``).
Each docstring below is the reference for its hook.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("mirflow")
hookimpl = HookimplMarker("mirflow")


@hookspec
def register_analyzers(register):
    """Register analyzer classes by calling ``register(AnalyzerSubclass)``.

    Called once per plugin manager. Not ``firstresult``: every plugin adds its own,
    and the host rejects two analyzers with the same dotted name.
    """


@hookspec(firstresult=True)
def aggregate(analyzer, parts, track):
    """Take over the merge of another plugin's analyzer: its per-chunk ``parts`` into its
    track-level output.

    An analyzer merges its own chunks (:meth:`mirflow.Analyzer.merge`); this hook is asked
    before it, for a plugin that wants to replace someone else's merge. ``analyzer`` is the
    configured analyzer instance, ``parts`` a list of :class:`mirflow.aggregate.Part` (chunk +
    that chunk's outputs, times already absolute), ``track`` a
    :class:`mirflow.aggregate.Track` (duration, chunk plan). Return a dict
    ``{output_name: value}`` to take over, or ``None`` to leave it to the analyzer's own
    ``merge`` and finally to mirflow's default rules.

    ``firstresult`` because exactly one implementation must own the merge.
    """


@hookspec
def progress(event):
    """Receive a progress event (a :class:`mirflow.events.Event`).

    Not ``firstresult``: the CLI's progress bar, a web server and a log file may
    all listen at once. Implementations must be quick and must not raise.
    """


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``mirflow`` CLI group ``cli``."""


@hookspec
def register_backends(register):
    """Describe the compute backends this plugin's analyzers run on, by calling
    ``register(name, probe)``: ``probe`` is Python source that ``mirflow doctor`` and the
    server's ``/api/health`` run in a fresh interpreter (a crashing import must not take them
    down; TensorFlow and Essentia must not share one) and that prints one JSON line
    ``{"version", "devices", "gpu", "reason"}`` — ``reason`` saying why no GPU is usable.
    ``mirflow.devices.PRELUDE`` may start it (it defines ``loadable(name)`` and ``driver``).

    Not ``firstresult``: every plugin adds its own. Two plugins may register one name with
    the same probe (two plugins on onnxruntime); different probes for one name are an error.
    A core install probes only the backends of the plugins it has.
    """


@hookspec
def register_exporters(register):
    """Add result formats by calling ``register(name, exporter)``: ``exporter(result)`` takes a
    result (the strict-JSON dict of docs/results.md) and returns ``[(suffix, text or bytes)]``,
    e.g. ``[(".beats.txt", "0.5\\n1.0\\n")]``, written beside the JSON as ``NAME + suffix``.

    The name is then accepted by ``--format`` and a pipeline's ``output.formats``. Exporters run
    in the CPU lane; one that raises is an error of that file and format (in the result's
    ``errors``), never of the run. Not ``firstresult``; a name taken twice is an error. An
    exporter with an ``audio`` parameter also gets the run's decoded track (a
    :class:`mirflow.audio.Decoded` view, or None where there is none), so it need not decode
    the source again.
    """
