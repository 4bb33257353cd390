"""Scores in nbgrader's gradebook: nbgrader's autograde scoring, late penalties, ungradable work.
Trusted side: nbgrader stays the source of truth for every number."""
