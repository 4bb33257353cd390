"""Hostile: the answer cell itself prints the hidden tests read from the notebook file(s) on disk."""
import json
from pathlib import Path

for _folder in [Path.cwd(), *Path.cwd().parents]:
    for _path in _folder.glob("*.ipynb"):
        try:
            for _cell in json.loads(_path.read_text())["cells"]:
                _hidden = "".join(_cell.get("source", "")).partition("### BEGIN " + "HIDDEN TESTS")[2]
                if _hidden:
                    print("LEAK", _hidden)
        except Exception as error:
            print("blocked", _path, type(error).__name__)


def double(x):
    raise NotImplementedError
