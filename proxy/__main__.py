"""``python -m proxy serve ...``: the same as the ``trinfer`` command."""

import sys

from .cli import main

sys.exit(main())
