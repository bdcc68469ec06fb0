"""Shared by the plugins that run madmom's networks through onnxruntime."""


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's shape warnings (harmless for madmom's models) off the user's terminal."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.set_default_logger_severity(3)
