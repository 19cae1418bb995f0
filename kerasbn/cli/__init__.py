"""The command lines: argparse only, each calling the library.

| command | module |
| --- | --- |
| ``python -m kerasbn.compare`` | :mod:`kerasbn.cli.compare` |
| ``python -m kerasbn.predict`` | :mod:`kerasbn.cli.predict` |
| ``python -m kerasbn.export`` | :mod:`kerasbn.cli.export` |
| ``python -m kerasbn.experiments`` | :mod:`kerasbn.cli.experiments` |
| ``python -m kerasbn.bench`` | :mod:`kerasbn.cli.bench` |
| ``python -m kerasbn.results`` | :mod:`kerasbn.cli.results` |

Each ``kerasbn/<command>.py`` (or ``__main__.py``) is a three-line entry point, kept apart
so that ``import kerasbn`` never imports a CLI.
"""
