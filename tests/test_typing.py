"""The strictly typed core stays strictly typed: ``mypy --strict`` over the modules listed in
pyproject.toml (services, drivers, the access gate, tasks, events, fan-out, tenant services),
as ``make lint`` runs it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_strict_modules_type_check() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
