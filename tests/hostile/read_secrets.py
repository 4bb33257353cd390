"""Hostile: read the hidden tests (source/, the gradebook) and another student's submission."""
import glob

for pattern in ["__COURSE__/source/*/*.ipynb", "__COURSE__/gradebook.db", "__COURSE__/submitted/*/*/*.ipynb",
                "/root/*", "/work/main/*"]:
    for path in glob.glob(pattern) or [pattern]:
        try:
            print("LEAK", path, open(path, errors="replace").read()[:100000])
        except Exception as error:
            print("blocked", path, type(error).__name__)


def double(x):
    return 2 * x
