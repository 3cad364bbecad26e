"""migration-coordinator: live-migrate libvirt/QEMU VMs whose vTPM and disks depend on libvirt secrets.

Public API only. Importing has no side effects (no connection, no logging setup) and loads nothing:
each name is imported from its module on first use (PEP 562). That keeps ``migcoord --version``
fast, and it keeps this facade — the top layer, which re-exports the flows — out of the way of the
lower layers: ``checks`` importing ``coordinator.core.x`` never drags in the flows that import
``checks``. See ARCHITECTURE.md for the layers.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from coordinator.core.release import __version__

# public name → the module it is imported from (its definition or the flow that re-exports it; checked by
# tests/unit/test_layers.py)
_EXPORTS = {
    "BadInput": "coordinator.core.errors", "Blocked": "coordinator.core.errors", "Busy": "coordinator.core.errors",
    "HostUnreachable": "coordinator.core.errors", "MigcoordError": "coordinator.core.errors",
    "MigrationFailed": "coordinator.core.errors", "SecretMismatch": "coordinator.core.errors",
    "SecretUnavailable": "coordinator.core.errors", "HostError": "coordinator.core.errors",
    "Interrupted": "coordinator.core.errors",
    "MigrationResult": "coordinator.core.model", "SecretAction": "coordinator.core.model",
    "SecretKind": "coordinator.core.model", "SecretPlan": "coordinator.core.model",
    "SecretRef": "coordinator.core.model", "Verdict": "coordinator.core.model",
    "secret_refs": "coordinator.core.domain.secret_refs", "union_refs": "coordinator.core.domain.secret_refs",
    "MigrationPolicy": "coordinator.core.params", "TimeoutPolicy": "coordinator.core.params",
    "SecretPolicy": "coordinator.core.secret_rules",
    "SshConfig": "coordinator.ssh.runner",
    "Journal": "coordinator.steps.journal",
    "KeyRing": "coordinator.steps.keys", "ValueSource": "coordinator.steps.keys",
    "RetryPolicy": "coordinator.steps.retry",
    "MigrateOptions": "coordinator.steps.parameters", "Runtime": "coordinator.steps.parameters",
    "migrate": "coordinator.flows.migrate",
    "plan_domain_secrets": "coordinator.flows.plan_secrets",
    "EvacuationPlan": "coordinator.flows.evacuate", "EvacuationPolicy": "coordinator.flows.evacuate",
    "EvacuationReport": "coordinator.flows.evacuate", "Outcome": "coordinator.flows.evacuate",
    "evacuate": "coordinator.flows.evacuate", "plan_evacuation": "coordinator.flows.evacuate",
    "abort_migration": "coordinator.flows.control", "complete_migration": "coordinator.flows.control",
    "maintenance": "coordinator.flows.maintenance",
}

__all__ = ["BadInput", "Blocked", "Busy", "EvacuationPlan", "EvacuationPolicy", "EvacuationReport", "HostError",
    "HostUnreachable", "Interrupted", "Journal", "KeyRing", "MigcoordError", "MigrateOptions", "MigrationFailed",
    "MigrationPolicy", "MigrationResult", "Outcome", "RetryPolicy", "Runtime", "SecretAction", "SecretKind",
    "SecretMismatch", "SecretPlan", "SecretPolicy", "SecretRef", "SecretUnavailable", "SshConfig",
    "TimeoutPolicy", "ValueSource", "Verdict", "__version__", "abort_migration", "complete_migration", "evacuate",
    "maintenance", "migrate", "plan_domain_secrets", "plan_evacuation", "secret_refs", "union_refs"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'coordinator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from coordinator.core.domain.secret_refs import secret_refs, union_refs
    from coordinator.core.errors import (BadInput, Blocked, Busy, HostError, HostUnreachable, Interrupted,
                                         MigcoordError, MigrationFailed, SecretMismatch, SecretUnavailable)
    from coordinator.core.model import MigrationResult, SecretAction, SecretKind, SecretPlan, SecretRef, Verdict
    from coordinator.core.params import MigrationPolicy, TimeoutPolicy
    from coordinator.core.secret_rules import SecretPolicy
    from coordinator.flows.evacuate import (EvacuationPlan, EvacuationPolicy, EvacuationReport, Outcome, evacuate,
                                            plan_evacuation)
    from coordinator.flows.control import abort_migration, complete_migration
    from coordinator.flows.maintenance import maintenance
    from coordinator.flows.migrate import migrate
    from coordinator.flows.plan_secrets import plan_domain_secrets
    from coordinator.ssh.runner import SshConfig
    from coordinator.steps.journal import Journal
    from coordinator.steps.keys import KeyRing, ValueSource
    from coordinator.steps.parameters import MigrateOptions, Runtime
    from coordinator.steps.retry import RetryPolicy
