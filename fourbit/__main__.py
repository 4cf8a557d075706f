"""``python -m fourbit``: the ``fourbit`` command (:mod:`fourbit.cli`)."""

import sys

from fourbit.cli import main

if __name__ == "__main__":
    sys.exit(main())
