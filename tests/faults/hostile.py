"""A receiver that misbehaves on purpose, at the socket level, where pytest-httpserver cannot: it refuses,
resets, stalls, trickles, floods, and sends bytes that are not UTF-8."""
import socket
import threading
import time
from collections.abc import Callable

Behaviour = Callable[[socket.socket, threading.Event], None]


class HostileReceiver:
    """Accepts connections on 127.0.0.1 and hands each to `behaviour` on its own thread."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stopped = threading.Event()
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            read_request(conn)
            self.behaviour(conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(5)


def read_request(conn: socket.socket) -> bytes:
    """Read the request head and its body (Content-Length), so that answering cannot reset it early; returns
    the head."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def answer(status: str, body: bytes, headers: str = "") -> Behaviour:
    def behave(conn: socket.socket, stopped: threading.Event) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n\r\n"
                     .encode() + body)
    return behave


def reset_mid_body(conn: socket.socket, stopped: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close


def silent(conn: socket.socket, stopped: threading.Event) -> None:
    """Accepts the request and never answers."""
    stopped.wait(60)


def trickle_body(conn: socket.socket, stopped: threading.Event) -> None:
    """Answers at once, then sends its body one byte every 0.1 s, forever: each read is quick, the whole never ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
    while not stopped.is_set():
        conn.sendall(b"x")
        time.sleep(0.1)


def trickle_head(conn: socket.socket, stopped: threading.Event) -> None:
    """Sends its status line and headers one byte every 0.1 s, forever (slowloris, the other way round)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stopped.is_set():
        conn.sendall(b"X-Slow: a\r\n"[:1])
        time.sleep(0.1)


def flood(conn: socket.socket, stopped: threading.Event) -> None:
    """100 MB of body, as fast as the client takes it."""
    size = 100 * 1024 * 1024
    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    block = b"y" * (1024 * 1024)
    for _ in range(100):
        if stopped.is_set():
            return
        conn.sendall(block)
