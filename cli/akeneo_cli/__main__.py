"""``python -m akeneo_cli``: the ``akeneo-connector`` command without its console script."""

import sys

from akeneo_cli.main import main

sys.exit(main())
