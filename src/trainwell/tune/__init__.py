"""tune subpackage."""
