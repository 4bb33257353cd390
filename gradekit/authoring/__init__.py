"""Writing and publishing a lab: notebook cells, the checks cell, `release` and `publish`.
Trusted side (the instructor's); the checks cell's text also runs in students' kernels, as notebook text."""
