"""The embedded broker (config/broker.py): a consumer never takes a message that is still being written."""
import threading

from kombu import Connection

MESSAGES = 1500


def test_a_consumer_reading_while_messages_are_written_gets_each_whole_and_once(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "processed_folder": str(tmp_path / "processed"),
               "control_folder": str(tmp_path / "control")}  # kombu's default is ./control, in the checkout
    (tmp_path / "processed").mkdir()
    payload = {"body": "x" * 20_000}  # large enough that a write is not one instant
    received, errors = [], []
    done, bound = threading.Event(), threading.Event()

    def consume() -> None:
        with Connection(transport="config.broker:Transport", transport_options=options) as connection:
            queue = connection.SimpleQueue("race")
            bound.set()
            while len(received) < MESSAGES and not done.is_set():
                try:
                    message = queue.get(timeout=0.05)
                except queue.Empty:
                    continue
                except Exception as error:  # noqa: BLE001 - a half-written file: what used to stop the worker
                    errors.append(error)
                    return
                received.append(message.payload)
                message.ack()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    # kombu writes a new exchange's table in two steps (create, then fill): a publisher reading it meanwhile
    # finds it empty. That race is kombu's, not the one under test, so the consumer binds first.
    assert bound.wait(timeout=60), errors
    with Connection(transport="config.broker:Transport", transport_options=options) as connection:
        queue = connection.SimpleQueue("race")
        for number in range(MESSAGES):
            queue.put({**payload, "n": number})
    consumer.join(timeout=120)  # it stops once it has every message (or on an error)
    done.set()
    assert errors == []
    assert sorted(m["n"] for m in received) == list(range(MESSAGES))
    assert all(m["body"] == payload["body"] for m in received)
