"""``python -m petri.cli``: the ``petri`` command."""

import sys

from . import main

sys.exit(main())
