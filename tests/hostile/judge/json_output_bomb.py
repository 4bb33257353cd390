"""Hostile: small to send, huge to keep: display outputs of 1.5 M empty JSON objects each (6 MB of text),
updated in place so that the kernel frees them, to make the grader's process rebuild millions of objects."""
from IPython.display import display


def double(x):
    return x + 1  # wrong: the bomb is all it has


_bomb = {"application/json": [{}] * 1_500_000, "text/plain": "bomb"}
for _ in range(3):
    handle = display(_bomb, raw=True, display_id=True)
    handle.update(_bomb, raw=True)
