"""The receiver host of bench/cluster.py: an asyncio HTTP server that answers 200 after 100 ms and logs every
request as it arrives ("<unix time> <client address> <webhook-id> <path>"), so that the cluster can count
duplicates and tell which worker host sent what. /flaky answers 503 to the first request of each webhook-id
and 200 to the next (a retry that comes due). Run by bench/cluster.py inside the receiver's namespace:

    python bench/cluster_receiver.py ADDRESS PORT LOG_FILE
"""
import asyncio
import sys
import time

DELAY = 0.1  # seconds the receiver takes to answer
BODY = b'{"ok": true}'


def answer(status: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


async def serve(address: str, port: int, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)  # a line at a time: the cluster reads it while requests arrive
    seen_flaky: set[bytes] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.get_extra_info("peername")[0]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(header(head, b"content-length") or 0)
                if length:
                    await reader.readexactly(length)
                path = head.split(b" ", 2)[1]
                webhook_id = header(head, b"webhook-id") or b"-"
                status = b"200 OK"
                if path.startswith(b"/flaky") and webhook_id not in seen_flaky:
                    seen_flaky.add(webhook_id)
                    status = b"503 Service Unavailable"
                log.write(f"{time.time():.3f} {client} {webhook_id.decode()} {path.decode()} {status[:3].decode()}\n")
                await asyncio.sleep(DELAY)
                writer.write(answer(status))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, address, port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
