"""The embedded default's broker: kombu's file-system transport, with messages written atomically.

kombu writes a message by opening its final file name and then writing into it, so a worker that lists the
folder in between takes an empty or half-written file, fails to decode it and exits (seen once in about
nine minutes of load, which honcho answered by stopping web and beat too). Here a message is written under a
name no consumer looks at and renamed into place once complete; a rename within a folder is atomic.
"""
import os
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
