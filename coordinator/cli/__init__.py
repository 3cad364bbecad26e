"""The command line (the only package that uses argparse): one module per command, shared options, rendering."""
from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
