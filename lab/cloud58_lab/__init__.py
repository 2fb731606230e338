"""cloud58's lab: real Kubernetes control planes and, later, a small simulated cloud on this machine.

Used by the pytest fixtures (tests/conftest.py) and by ``make lab``.
"""

import sys
from pathlib import Path

# The lab builds on the collection (its x509 code, planner, renderers, reconcile engine), so
# the repository's collections/ is importable however the lab starts (`make lab` puts only
# lab/ on PYTHONPATH).
_COLLECTIONS = str(Path(__file__).resolve().parents[2] / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.append(_COLLECTIONS)
