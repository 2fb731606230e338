"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test creates its sanity virtualenvs without pip and then runs a "get-pip" script
that it fetches from a host this build network cannot reach. This script does the same
job from what is reachable: it seeds pip from the interpreter's own ``ensurepip`` wheels
and then lets that pip install the requested versions from PyPI. ansible-test runs it as
``__main__`` with get-pip's command line (pip options, packages, and get-pip's own
``--no-setuptools`` / ``--no-wheel`` flags).
"""

import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    ensurepip = [sys.executable, "-m", "ensurepip", "--default-pip"]
    subprocess.run(ensurepip, check=True, stdout=subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
