"""Proxies for the tests: a TCP proxy that can cut a service off (every open connection is dropped and new
ones are refused until it is restored: the database 'unavailable for N seconds', as seen from the workers),
one that freezes a PostgreSQL client inside a transaction (the network gone without a word), and an HTTP
CONNECT proxy (the egress proxy of issue 18)."""
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


READY_FOR_QUERY = b"Z\x00\x00\x00\x05"  # PostgreSQL's ReadyForQuery, then I (idle), T (in a transaction) or E


class FreezingProxy:
    """A TCP proxy to PostgreSQL that partitions its clients from the server without a word, at the worst
    moment: once a connection has sent a statement containing `marker` inside a transaction and the server
    has answered it (the server's rows are locked, and it waits for the next statement), nothing more is
    forwarded either way on any connection, nothing is closed, and new connections are accepted and left
    hanging; what clients send is dropped. A host that crashed or a network partition look like this to both
    sides. The server's side of the frozen connection is still read: `heard` is what the server sent it
    afterwards, and `ended` is set when the server closed it."""

    def __init__(self, target: tuple[str, int], marker: bytes) -> None:
        self.target, self.marker = target, marker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.ended = threading.Event()
        self.heard = bytearray()
        self.lock = threading.Lock()
        self.armed: socket.socket | None = None  # the server side of the connection that sent the marker
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Close everything: the server ends the sessions left open (the partition is over)."""
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                _shut(sock)
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            if self.frozen.is_set():
                continue  # partitioned: the connection opens and nothing more happens on it
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.sockets.append(server)
            threading.Thread(target=self._to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket) -> None:
        """Forwarded until the freeze, then dropped; the connection that sends the marker first is armed."""
        tail = b""
        try:
            while data := client.recv(65536):
                if self.frozen.is_set():
                    continue
                with self.lock:
                    if self.armed is None and self.marker in tail + data:
                        self.armed = server
                tail = (tail + data)[-len(self.marker):]
                server.sendall(data)
        except OSError:
            pass
        if not self.frozen.is_set():  # an orderly close before the partition reaches the server
            _shut(client, server)

    def _to_client(self, server: socket.socket, client: socket.socket) -> None:
        """Forwarded until the armed connection's server says it waits inside a transaction: that answer is
        never delivered, and the partition begins."""
        tail = b""
        try:
            while data := server.recv(65536):
                if self.frozen.is_set():
                    if server is self.armed:
                        self.heard += data
                    continue
                seen = (tail + data)[-len(READY_FOR_QUERY) - 1:]
                tail = seen
                if server is self.armed and seen[:-1] == READY_FOR_QUERY:
                    if seen[-1:] == b"T":
                        self.frozen.set()
                        continue
                    with self.lock:
                        self.armed = None  # answered outside a transaction: wait for one inside
                client.sendall(data)
        except OSError:
            pass
        if self.frozen.is_set():
            if server is self.armed:
                self.ended.set()
        else:
            _shut(client, server)


def _shut(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


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
