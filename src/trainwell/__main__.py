"""``python -m trainwell``."""

from trainwell.cli import main

raise SystemExit(main())
