"""Built-in defaults the command line's parser shows, as plain constants: no imports at all.

The parser (``--help``, ``--version``) reads them from here so that building it costs nothing
beyond argparse; the modules that own each value (``params``, ``config``, ``steps.retry``,
``steps.journal``, ``steps.locks``) take their defaults from here too, so there is one copy.
"""

CONFIG_PATH = "/etc/migcoord/config.toml"
CONFIG_ENV = "MIGCOORD_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")

JOURNAL_PATH = "/var/log/migcoord/journal.jsonl"
JOURNAL_ENV = "MIGCOORD_JOURNAL"
LOCK_DIR = "/run/migcoord"
LOCK_DIR_ENV = "MIGCOORD_LOCK_DIR"

RETRY_ATTEMPTS = 4
RETRY_MAX_SECONDS = 120.0
STALL_TIMEOUT_S = 150.0
TIMEOUT_PER_GIB_S = 800.0   # Nova's live_migration_completion_timeout
TIMEOUT_MINIMUM_S = 60.0
