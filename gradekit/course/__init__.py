"""The shared vocabulary every step speaks: the course directory and its paths, the config, the gradebook,
nbgrader cells, statuses, exit codes and safe text. Trusted side; imports nothing else from gradekit."""
