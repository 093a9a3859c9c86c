"""Sluice: the data engineering lifecycle on one machine."""

__version__ = "0.1.0"
