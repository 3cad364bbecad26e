"""Built-in defaults the command line's parser shows, as plain constants: nothing beyond ``os`` imported.

The parser (``--help``, ``--version``) reads them from here so that building it costs nothing
beyond argparse; the modules that own each value (``params``, ``config``, ``steps.retry``,
``steps.journal``, ``steps.locks``) take their defaults from here too, so there is one copy.
"""
import os
from pathlib import Path


CONFIG_PATH = "/etc/migcoord/config.toml"
CONFIG_ENV = "MIGCOORD_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")

JOURNAL_PATH = "/var/log/migcoord/journal.jsonl"
JOURNAL_ENV = "MIGCOORD_JOURNAL"
LOCK_DIR = "/run/migcoord"
LOCK_DIR_ENV = "MIGCOORD_LOCK_DIR"
# As this process's environment names them (read once, at import): the one copy the parser, the
# journal, the locks and ``Runtime`` use.
DEFAULT_JOURNAL = Path(os.environ.get(JOURNAL_ENV, JOURNAL_PATH))
DEFAULT_LOCK_DIR = Path(os.environ.get(LOCK_DIR_ENV, LOCK_DIR))

RETRY_ATTEMPTS = 4
RETRY_MAX_SECONDS = 120.0
STALL_TIMEOUT_S = 150.0
TIMEOUT_PER_GIB_S = 800.0   # Nova's live_migration_completion_timeout
TIMEOUT_MINIMUM_S = 60.0
