"""Pre-flight checks (registry and one module per area). See issue #4; grows from here."""
