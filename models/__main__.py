"""`python -m models …` from the repository root: the model registry's command line (lifecycle/cli.py).

functions/, local/ and models/ are roots of imports, as in Lambda and in the tests.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for root in ("models", "local", "functions"):
    if str(ROOT / root) not in sys.path:
        sys.path.insert(0, str(ROOT / root))

from lifecycle.cli import main  # noqa: E402 - needs the import roots above

sys.exit(main())
