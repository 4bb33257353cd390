"""Instructor tooling around nbgrader: release, collect, repair, grade, feedback, report."""
