"""Re-running a script with the project venv's python, for scripts that need its packages
(libvirt-python) but may be started with the system python3."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from labkit.state import ROOT


def reexec_unless_importable(module: str, dist: str, script: str, prog: str) -> None:
    """Return if ``module`` (of distribution ``dist``) imports here; else re-run ``script`` (with
    the same arguments) with the venv's python (``$MIGCOORD_VENV`` or .venv), once, or exit
    saying why that is impossible."""
    try:
        importlib.import_module(module)
        return
    except ImportError:
        pass
    venv = Path(os.environ.get("MIGCOORD_VENV") or ROOT / ".venv")
    py = venv / "bin" / "python"
    marker = f"_MIGCOORD_{prog.upper()}_REEXEC"
    if py.exists() and os.environ.get(marker) != "1":
        os.environ[marker] = "1"
        os.execv(str(py), [str(py), str(Path(script).resolve()), *sys.argv[1:]])
    sys.exit(f"{prog}: {dist} not importable and no venv at {venv} "
             "(run scripts/test once, or set MIGCOORD_VENV)")
