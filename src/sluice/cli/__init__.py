"""The ``sluice`` command line: parses arguments, calls the library, renders the result."""

from sluice.cli.app import app, main

__all__ = ["app", "main"]
