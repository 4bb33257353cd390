"""Old path of `HideHiddenTests`, for course configs that name it (`c.GenerateFeedback.preprocessors`):
use `gradekit.delivery.feedback.HideHiddenTests`."""

from gradekit.delivery.feedback import HideHiddenTests

__all__ = ["HideHiddenTests"]
