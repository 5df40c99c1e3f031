"""``python -m mtlcourse``: the command line of :mod:`mtlcourse.cli` (``info``, ``train``, ``evaluate``, ``bench``)."""

import sys

from mtlcourse.cli import main

if __name__ == "__main__":
    sys.exit(main())
