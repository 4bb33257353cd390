"""Hostile: overwrite the gradebook, another student's submission and autograded/."""
for path in ["__COURSE__/gradebook.db", "__COURSE__/submitted/honest/tiny/tiny_double.ipynb",
             "__COURSE__/autograded/honest/tiny/tiny_double.ipynb", "__COURSE__/source/tiny/tiny_double.ipynb"]:
    try:
        with open(path, "w") as file:
            file.write("pwned")
        print("WROTE", path)
    except Exception as error:
        print("blocked", path, type(error).__name__)


def double(x):
    return 2 * x
