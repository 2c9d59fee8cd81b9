"""The package version: its one definition (``pyproject.toml`` reads it from here).

A module of its own so that ``certstream.config`` and the command line can name the version
without importing the package's public API (which loads the whole core).
"""

__version__ = "0.1.0"
