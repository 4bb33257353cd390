"""Hostile: double raises an error quoting the test source (In/_ih, frames + linecache, *.ipynb on disk)."""
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


def _leak():
    lines = [line.strip() for source in _test_sources() if "_test_sources" not in source  # not this cell
             for line in source.splitlines() if "check_" in line or "make_generator(" in line or "randn(" in line]
    return "\n".join(dict.fromkeys(line for line in lines if not line.startswith("def ")))


def double(x):
    raise ValueError("LEAK\n" + _leak())
