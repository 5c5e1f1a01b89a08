"""diagnose subpackage."""
