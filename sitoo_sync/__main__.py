"""`python -m sitoo_sync` is the same as the `sitoo-sync` command."""

import sys

from sitoo_sync.cli import main

sys.exit(main())
