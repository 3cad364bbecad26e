"""Pre-flight checks: a registry, one module per area, a report (house rules 5, 6 and 13).

``preflight(src_uri, dst_uri, domains)`` runs every registered check and changes nothing.
The check ids, severities and hints are listed in checks/README.md.
"""
from __future__ import annotations

# NOTE: importing the area modules registers their checks, in this (report) order.
from . import hosts  # noqa: F401  isort: skip
from . import domain  # noqa: F401  isort: skip
from . import secrets  # noqa: F401  isort: skip
from . import capability  # noqa: F401  isort: skip
from . import resources  # noqa: F401  isort: skip
from . import ssh  # noqa: F401  isort: skip
from .context import CheckContext, Memo, Target, build_context
from .preflight import check_guests, check_targets, checks_for_migration, preflight, validate_selection
from .registry import REGISTRY, Check, CheckFn, Finding, Report, Result, check, run_checks

__all__ = ["Check", "CheckContext", "CheckFn", "Finding", "Memo", "REGISTRY", "Report", "Result", "Target",
           "build_context", "check", "check_guests", "check_targets", "checks_for_migration", "preflight",
           "run_checks", "validate_selection"]
