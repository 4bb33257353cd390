"""Old spelling of `gradekit lms ...`: `python -m gradekit.lms grades|feedback|dates`."""

import sys

from gradekit.commands.lms import standalone

if __name__ == "__main__":
    sys.exit(standalone())
