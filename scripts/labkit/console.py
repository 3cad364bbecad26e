"""What the lab says on stderr, and how it stops on an error (exit code 2)."""
from __future__ import annotations

import sys
from typing import NoReturn


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> NoReturn:
    log(f"error: {msg}")
    sys.exit(2)
