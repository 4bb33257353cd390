"""Instructor tooling around nbgrader: release, collect, repair, grade, feedback, report."""

import sys

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax when it is installed, which
# compiles a grammar at import: ~1.4 s of CPU per process, for URI formats notebooks never use.
sys.modules.setdefault("rfc3987_syntax", None)
