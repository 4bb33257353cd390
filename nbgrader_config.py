"""nbgrader configuration for the course (loaded from the course root, the repository root by default)."""

import os

c = get_config()  # noqa: F821 - injected by nbgrader

c.CourseDirectory.course_id = "logreg-pytorch"

# What students see in place of solutions.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Per-cell limit inside a notebook (the whole-notebook limit is the grader's --timeout).
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# Stray warnings: nbgrader gives 0 to a test cell that writes to stderr, and a
# deprecation warning raised inside a library is not the student's mistake. Kernels
# inherit this environment, so warnings are silenced while grading. The instructor
# notebooks are still checked warning-free in the test suite (tests/test_labs.py).
os.environ.setdefault("PYTHONWARNINGS", "ignore")

# Files copied with a submission are capped and filtered: LMS and OS clutter, caches,
# data a student saved by accident.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "__MACOSX", ".DS_Store",
    "Thumbs.db", "*.pt", "*.pth", "*.ckpt",
]
c.CourseDirectory.max_file_size = 1000  # KB

# Long outputs (a student printing in a loop) are cut before they reach the gradebook.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 50
