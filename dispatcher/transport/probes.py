"""Boot-time probes of the guarded client: the guard relies on aiohttp handing every connection's address to
its public socket_factory hook, and the egress tunnel on aiohttp connecting through the socket that hook
returns. Every process checks both when it starts (dispatcher/checks.py, system check dispatcher.E004), so a
library upgrade that changed either fails fast instead of connecting unchecked."""
import asyncio
import socket

import aiohttp

from dispatcher.transport.client import Tunnels, blocked_address, session_create, tunnelled_session

GUARD_PROBE_ADDRESS = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never a receiver, whatever the settings allow


def guard_problem() -> str | None:
    """Why the connect-time check is not in effect, or None. The guard relies on aiohttp handing every
    connection's address to socket_factory; processes check it when they start (dispatcher/checks.py), so
    a library upgrade that stopped doing so fails fast instead of connecting unchecked. No packet is sent
    while it holds: the probe's socket is refused before it exists."""

    async def probe() -> str | None:
        async with session_create(max_in_flight=1, egress=None) as session:  # the proxy has its own check
            try:
                async with session.get(f"http://{GUARD_PROBE_ADDRESS}/", allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=2)):
                    return f"a request to {GUARD_PROBE_ADDRESS} was sent"
            except Exception as error:  # noqa: BLE001 - any other outcome is the problem to report
                if blocked_address(error) is not None:
                    return None
                return f"a connection to {GUARD_PROBE_ADDRESS} was tried ({type(error).__name__})"

    return asyncio.run(probe())


PROBE_REQUEST_LINE = b"GET /egress-probe HTTP/1.1\r\n"


def egress_problem() -> str | None:
    """Why a tunnel through the egress proxy would not be used as Tunnels hands it over, or None: aiohttp
    must pass the resolver's answer to socket_factory and connect through the socket it returns, as it is.
    Processes with WEBHOOK_EGRESS_PROXY check it when they start (dispatcher/checks.py). It runs in memory:
    the 'tunnel' is one end of a socket pair, and the other end answers."""

    async def probe() -> str | None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)

        async def open_tunnel(address: str, port: int) -> socket.socket:
            return ours

        async def lookup(host: str, port: int, family: socket.AddressFamily) -> list[str]:
            return [GUARD_PROBE_ADDRESS]  # nothing is sent there: the tunnel is the socket pair

        async def answer() -> bytes:
            head = b""
            while b"\r\n\r\n" not in head and (chunk := await loop.sock_recv(theirs, 4096)):
                head += chunk
            await loop.sock_sendall(theirs, b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            return head

        answering = asyncio.ensure_future(answer())
        try:
            async with tunnelled_session(1, Tunnels(open_tunnel, lookup)) as session:
                async with session.get("http://egress-probe.invalid/egress-probe", allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=5)) as response:
                    status = response.status
            heard = await answering if status == 204 else b""
        except Exception as error:  # noqa: BLE001 - any failure is the problem to report
            return f"a request through a tunnel failed ({type(error).__name__}: {error})"
        finally:
            answering.cancel()
            ours.close()  # a no-op once aiohttp has it (detached), and its connection is closed
            theirs.close()
        if not heard.startswith(PROBE_REQUEST_LINE):
            return f"a request through a tunnel was answered {status} by something else"
        return None

    return asyncio.run(probe())
