"""``python -m trainwell``."""

from trainwell.cli import run

run()
