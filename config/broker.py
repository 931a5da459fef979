"""The embedded default's broker: kombu's file-system transport, with messages written atomically.

kombu writes a message by opening its final file name and then writing into it, so a worker that lists the
folder in between takes an empty or half-written file, fails to decode it and exits (seen once in about
nine minutes of load, which honcho answered by stopping web and beat too). Here a message is written under a
name no consumer looks at and renamed into place once complete; a rename within a folder is atomic.
"""
import os
import socket
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):  # unannotated, as kombu's own (its signature differs from AbstractChannel's)
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # consumers skip names not ending in .msg
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class Transport(filesystem.Transport):
    Channel = Channel

    def drain_events(self, connection, timeout=None):
        """kombu's, in slices of one polling interval, and over at once when the worker is asked to stop.

        Celery's consumer loop for a transport like this one polls for up to 2 s, sees a stop only between two
        polls and polls once more after it: up to 4 s of a Ctrl-C went by before the worker even began to
        close, within honcho's 5 s (dispatcher/delivery/stopping.py)."""
        from dispatcher.delivery.stopping import stop_requested  # the apps are loaded once a worker polls

        deadline = None if timeout is None else monotonic() + timeout
        while not stop_requested():
            wait = self.polling_interval or 1.0
            if deadline is not None:
                wait = min(wait, deadline - monotonic())
                if wait <= 0:
                    break
            try:
                return super().drain_events(connection, timeout=wait)
            except socket.timeout:
                continue
        raise socket.timeout()
