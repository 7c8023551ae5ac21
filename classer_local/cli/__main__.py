"""``python -m classer_local.cli``: the console script without installing it."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
