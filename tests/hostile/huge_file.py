"""Hostile: fill the disk (1 GB in the working directory, 1 GB in /tmp)."""
block = b"x" * 2**20
for path in ["huge.bin", "/tmp/huge.bin"]:
    try:
        with open(path, "wb") as file:
            for _ in range(1024):
                file.write(block)
        print("WROTE 1 GB to", path)
    except OSError as error:
        print("blocked", path, type(error).__name__)


def double(x):
    return 2 * x
