"""Old import paths, kept so that existing course configs and scripts keep working.

Course configs name classes by path (`c.AssignLatePenalties.plugin_class = "gradekit.lms.gradebook.PenaltyPerDay"`),
and `python -m gradekit.lms ...` was the documented command. The code now lives in `gradekit.scoring.late`
and `gradekit.commands.lms`; use those names (and the `gradekit lms ...` command) in new configs."""
