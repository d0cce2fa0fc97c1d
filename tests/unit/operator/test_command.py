"""The operator process's import footprint (its RSS is a scale target)."""

from __future__ import annotations

import subprocess
import sys


def test_operator_does_not_load_the_kubernetes_client_libraries() -> None:
    """kopf imports kubernetes_asyncio when installed (as in the test extras): ~40 MB of RSS
    the operator never uses. ``run`` blocks it before kopf is imported."""
    code = (
        "import sys\n"
        "from akeneo_operator import command\n"
        "assert 'kopf' not in sys.modules\n"
        "command.skip_unused_client_libraries()\n"
        "import kopf, akeneo_operator.handlers\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in command.UNUSED_CLIENT_LIBRARIES"
        " and sys.modules[m] is not None))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
