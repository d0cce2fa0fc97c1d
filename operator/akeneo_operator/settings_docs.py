"""``docs/configuration.md``'s generated tables: the components' and the operator's own.

``python -m akeneo_operator.settings_docs --write`` rewrites them; ``--check`` (``make
lint``) fails when one is stale. The operator's table comes from ``settings.OPTIONS``, the
same declarations its flags and env variables are read from.
"""

from __future__ import annotations

import sys

from akeneo_connector import settings_docs
from akeneo_operator.settings import OPTIONS, STANDALONE


def operator_table() -> str:
    rows = ["| flag | env | default | meaning |", "|---|---|---|---|"]
    for option in (*OPTIONS, STANDALONE):
        cells = (f"`{option.flag}`", f"`{option.env}`", option.default_doc, option.meaning)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    return settings_docs.main(
        argv, prog="akeneo_operator.settings_docs", extra={"operator": operator_table}
    )


if __name__ == "__main__":
    sys.exit(main())
