"""The price and load sample shipped with the package (see README.md)."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent
"""Folder of the sample, laid out like the shared data (one folder per data set)."""
