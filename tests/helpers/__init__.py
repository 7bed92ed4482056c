"""Helpers shared by the test modules (imported as ``tests.helpers.<module>``).

- :mod:`tests.helpers.catalog`: the catalog, the default-tier variants, the repository and test-data paths;
- :mod:`tests.helpers.export`: the ``zoo`` CLI in a subprocess, report rows, artifact checks;
- :mod:`tests.helpers.artifacts`: the session's shared export (see ``tests/conftest.py``);
- :mod:`tests.helpers.hub_server`: a static file server with injected faults for the hub tests;
- :mod:`tests.helpers.cli`: the CLI entry point run in-process or in a fresh process, one-line error checks;
- :mod:`tests.helpers.mounts`: small tmpfs mounts (full and read-only disks);
- :mod:`tests.helpers.tracking`: OSTrack's reference tracking code, synthetic sequences, CLI runs.
"""
