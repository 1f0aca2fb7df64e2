"""`python -m bpo_assistant …`: the same command line as `bpo-assistant …`."""

import sys

from .cli import main

sys.exit(main())
