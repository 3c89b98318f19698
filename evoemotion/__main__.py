"""Allow ``python -m evoemotion``."""

import sys

from evoemotion.cli import main

sys.exit(main())
