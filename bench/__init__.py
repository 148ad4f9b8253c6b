"""The benchmark suite (`make bench`, `python -m bench`): CPU, cold start, AWS calls, capacity, cost.

functions/, local/ and models/ are roots of imports, as in Lambda and in the tests.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _root in ("models", "local", "functions"):
    if str(ROOT / _root) not in sys.path:
        sys.path.insert(0, str(ROOT / _root))
