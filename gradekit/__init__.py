"""Instructor tooling around nbgrader: release, collect, repair, grade, feedback, report."""

import os
import sys

# nbgrader runs the `alembic` and `jupyter` scripts by name; they sit next to this interpreter,
# which is not on PATH when the venv is not activated (make runs .venv/bin/python directly).
_interpreter_bin = os.path.dirname(sys.executable)
if _interpreter_bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join([_interpreter_bin, os.environ.get("PATH", "")])

# jsonschema (under nbformat and nbgrader) imports rfc3987_syntax when it is installed, which
# compiles a grammar at import: ~1.4 s of CPU per process, for URI formats notebooks never use.
sys.modules.setdefault("rfc3987_syntax", None)
