"""The ``avsync`` command line: the only part of the package that prints or imports typer and rich.

Results go to stdout, progress and messages to stderr. Exit codes: 0 every file succeeded,
1 a file failed (or any other error), 2 bad usage, 3 ``fix`` measured but was not sure enough.

- :mod:`.app`: the Typer app, its root options and ``main`` (the ``avsync`` entry point);
- :mod:`.common`: the shared options, consoles, the one error path, loading the model, inputs;
- :mod:`.output`: summary lines and tables;
- one module per command or group: :mod:`.predict`, :mod:`.fix`, :mod:`.score`, :mod:`.models`
  (``models``, ``download``), :mod:`.evaluate` (``evaluate run``, ``evaluate make-protocol``),
  :mod:`.report`.
"""

from .app import app, main, ray_argv

__all__ = ["app", "main", "ray_argv"]
