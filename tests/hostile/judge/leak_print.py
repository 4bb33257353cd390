"""Hostile: double prints the test source (In/_ih, frames, *.ipynb) to stdout and as warning lines to stderr."""
import json
import linecache
import sys
from pathlib import Path

from IPython import get_ipython


def _test_sources():
    namespace = get_ipython().user_ns
    yield from namespace.get("_ih", [])
    frame = sys._getframe(1)
    while frame is not None:
        yield "".join(linecache.getlines(frame.f_code.co_filename))
        frame = frame.f_back
    for folder in [Path.cwd(), *Path.cwd().parents]:
        for path in folder.glob("*.ipynb"):
            try:
                for cell in json.loads(path.read_text())["cells"]:
                    yield "".join(cell.get("source", ""))
            except Exception:
                continue


def _lines():
    lines = [line.strip() for source in _test_sources() if "LeakWarning" not in source  # not this cell
             for line in source.splitlines() if "check_" in line or "make_generator(" in line or "randn(" in line]
    lines = [line for line in dict.fromkeys(lines) if not line.startswith("def ")]
    return sorted(lines, key=lambda line: "make_generator(" not in line)  # the generator's seed first


def double(x):
    for line in _lines():
        print("LEAK", line)
        print(f"LeakWarning: {line}", file=sys.stderr)  # the feedback page quotes the first "...Warning: ..." line
    return x + 1
