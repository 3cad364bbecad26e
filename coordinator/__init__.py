"""migration-coordinator: live-migrate libvirt/QEMU VMs whose vTPM and disks depend on libvirt secrets.

Public API only; importing has no side effects (no connection, no logging setup).
"""
from __future__ import annotations

__version__ = "0.1.0"

from .domxml import secret_refs, union_refs
from .errors import (BadInput, Blocked, Busy, HostUnreachable, MigcoordError, MigrationFailed,
                     SecretMismatch, SecretUnavailable)
from .evacuate import (EvacuationPlan, EvacuationPolicy, EvacuationReport, Outcome, Settings, evacuate,
                       plan_evacuation)
from .executor import RetryPolicy, migrate
from .journal import Journal
from .keys import KeyRing, ValueSource
from .model import MigrationResult, SecretAction, SecretKind, SecretPlan, SecretRef
from .params import MigrationPolicy, TimeoutPolicy
from .remote import SshConfig
from .planner import plan_domain_secrets
from .secrets import SecretPolicy

__all__ = [
    "EvacuationPlan", "EvacuationPolicy", "EvacuationReport", "Outcome", "Settings", "evacuate",
    "plan_evacuation", "TimeoutPolicy", "SshConfig",
    "BadInput", "Blocked", "Busy", "HostUnreachable", "Journal", "KeyRing", "MigcoordError",
    "MigrationFailed", "MigrationPolicy", "MigrationResult", "RetryPolicy", "SecretAction",
    "SecretKind", "SecretMismatch", "SecretPlan", "SecretPolicy", "SecretRef", "SecretUnavailable",
    "ValueSource", "migrate", "plan_domain_secrets", "secret_refs", "union_refs", "__version__",
]
