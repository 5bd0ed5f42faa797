"""`python -m crawler` is the `ghcr-inventory` command."""

import sys

from .cli import main

sys.exit(main())
