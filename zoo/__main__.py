"""``python -m zoo`` and the ``zoo`` script: the command line.

The first second of a run is imports (click, rich, numpy, pydantic and the commands). A Ctrl-C
there would surface inside whichever library was importing (pydantic even wraps it in a
``SchemaError``), so SIGINT and SIGTERM are held back until the CLI is imported: a signal that came
meanwhile ends the run with the same one line as later ones ("interrupted", 130 / "terminated", 143).
"""
import signal
import sys

_HELD = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143)}


def run() -> None:
    """Console entry point: import the CLI with SIGINT/SIGTERM held, act on one that came, run it."""
    held = hasattr(signal, "pthread_sigmask")
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, set(_HELD))
    try:
        from zoo.cli import main
    except KeyboardInterrupt:  # no sigmask on this platform: the signal may still land in an import
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    if held:
        for sig in signal.sigpending() & set(_HELD):
            message, code = _HELD[sig]
            sys.stderr.write(message + "\n")
            sys.exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(_HELD))
    main()


if __name__ == "__main__":
    run()
