"""`python -m gradekit <command>` (also the `gradekit` console script): see `gradekit.commands`."""

import sys

from gradekit.commands import main

if __name__ == "__main__":
    sys.exit(main())
