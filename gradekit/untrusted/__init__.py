"""What runs in the student's process (the sandboxed kernel, its executor and fork server) and nothing else.
Untrusted side of the wall: imports nothing from the rest of gradekit (an import-linter contract)."""
