"""Proxies for the tests: a TCP proxy that can cut a service off (every open connection is dropped and new
ones are refused until it is restored: the database 'unavailable for N seconds', as seen from the workers),
and an HTTP CONNECT proxy (the egress proxy of issue 18)."""
import socket
import threading


class CuttableProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.upstream_ports: dict[socket.socket, int] = {}  # our port of each open connection to the target
        self.dropped_ports: set[int] = set()  # … of those the last cut dropped
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every connection through the proxy and refuse new ones."""
        self.open.clear()
        with self.lock:
            self.dropped_ports = set(self.upstream_ports.values())
            self.upstream_ports.clear()
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.sockets.clear()

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets |= {client, server}
                self.upstream_ports[server] = server.getsockname()[1]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            relay(source, sink)
        finally:
            with self.lock:
                self.sockets -= {source, sink}
                for sock in (source, sink):
                    self.upstream_ports.pop(sock, None)


def relay(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction of a connection until it ends, then shut both sockets down."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback, as operators run for fixed egress IPs: it records each request line
    it is sent and tunnels (or, with refuse, answers 403)."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.asked: list[str] = []
        self.refuse = refuse
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        self.asked.append(line)
        method, target, _ = line.split(" ")
        if self.refuse or method != "CONNECT":
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host.strip("[]"), int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=relay, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.listener.close()
