"""A tiny course graded by plain `nbgrader autograde` for three students (feedback and report tests)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from gradekit.course.directory import Course

from .tiny_lab import LAB, NOTEBOOK, build_tiny_course, solved_notebook

# Realistic mistakes: wrong sign in the exponent, Bessel's correction; a print with HTML in it.
WRONG_SIGMOID = ("def sigmoid(z):\n    print('<script>alert(1)</script>')\n"
                 "    return 1 / (1 + torch.exp(z))")
BESSEL_MEAN_STD = ("def mean_std(x):\n    mean = x.mean(dim=0)\n"
                   "    return mean, ((x - mean) ** 2).sum(dim=0).div(x.shape[0] - 1).sqrt()")
STUDENTS = {"good": {}, "wrong": {"sigmoid": WRONG_SIGMOID, "mean_std": BESSEL_MEAN_STD},
            "partial": {"mean_std": BESSEL_MEAN_STD}}


def graded_tiny_course(root: Path) -> Course:
    course = build_tiny_course(root)
    for student, answers in STUDENTS.items():
        nb = solved_notebook(course)
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        target = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
    course.nbgrader("autograde", LAB, "--create")
    return course
