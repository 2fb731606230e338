"""cloud58's lab: real Kubernetes control planes and, later, a small simulated cloud on this machine.

Used by the pytest fixtures (tests/conftest.py) and by ``make lab``.
"""
