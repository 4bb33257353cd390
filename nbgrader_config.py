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

# Tracebacks in Python's plain form. IPython's default ("Context") parses the source file of every
# frame to show lines around it: ~85 ms per error, against ~10 ms. A blank or half-done notebook
# raises in twenty cells or more, so this was a third of its grading time, for nbgrader's own
# `autograde` as for gradekit's kernels. Students never see these tracebacks (feedback shows the
# failure messages only); instructors see the frame lines in the formgrader.
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Plain"]

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

# nbgrader's own feedback (`nbgrader generate_feedback`, the formgrader's "Generate Feedback") renders
# the autograded notebook, hidden tests and tracebacks included: HideHiddenTests cuts them out first.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "gradekit.delivery.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Late work (gradekit.scoring.late): `collect` writes each submission's LMS time into nbgrader's
# timestamp.txt; these due dates and per-student extensions (hours, by LMS student id) go into the
# gradebook, and nbgrader's AssignLatePenalties applies the penalty while grading.
c.LateWork.duedates = {}  # e.g. {"lab1": "2026-03-06 23:59:00 Europe/Paris"}
c.LateWork.extensions = {}  # e.g. {"lab1": {"12345": 48}}
# nbgrader's default records lateness without a penalty; "zero" scores late work 0; or, per started day:
#   c.AssignLatePenalties.plugin_class = "gradekit.scoring.late.PenaltyPerDay"
#   c.PenaltyPerDay.fraction_per_day = 0.1
c.LateSubmissionPlugin.penalty_method = "none"
