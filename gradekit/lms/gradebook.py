"""Old path of the late-work classes, for course configs that name them: use `gradekit.scoring.late`."""

from gradekit.scoring.late import LateWork, PenaltyPerDay

__all__ = ["LateWork", "PenaltyPerDay"]
