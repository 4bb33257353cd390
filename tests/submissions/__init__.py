"""A tiny nbgrader lab, and generators of real-world submissions (Colab, LMS, broken files) for it."""
