"""The embedded default (command 1): web, worker and beat share one SQLite file without "database is locked",
and links in e-mails and notifications follow the port it was started on.

These run in CI too (against PostgreSQL the suite itself does not touch SQLite): each starts Python processes
on a SQLite file of its own, configured by config/settings.py exactly as command 1 is.
"""
from tests.processes import SETTINGS, python

WRITER = SETTINGS + """
import sys
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS counter (n INTEGER)")
for _ in range(int(sys.argv[1])):
    with transaction.atomic(), connection.cursor() as cursor:  # read, then write: what a claim does
        cursor.execute("SELECT COUNT(*) FROM counter")
        count = cursor.fetchone()[0]
        cursor.execute("INSERT INTO counter (n) VALUES (%s)", [count])
print("done")
"""


def test_the_sqlite_connection_waits_for_locks_in_wal_mode(tmp_path):
    probe = python(SETTINGS + """
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    mode = cursor.fetchone()[0]
    cursor.execute("PRAGMA busy_timeout")
    print(mode, cursor.fetchone()[0], connection.settings_dict["OPTIONS"]["transaction_mode"])
""", database=tmp_path / "db.sqlite3")
    out, err = probe.communicate(timeout=120)
    assert probe.returncode == 0, err
    assert out.split() == ["wal", "20000", "IMMEDIATE"]


def test_concurrent_read_then_write_transactions_never_fail_with_database_is_locked(tmp_path):
    database = tmp_path / "db.sqlite3"
    first = python(WRITER, "1", database=database)  # creates the table before the race
    assert first.communicate(timeout=120)[0].strip() == "done"
    writers = [python(WRITER, "300", database=database) for _ in range(3)]
    results = [writer.communicate(timeout=300) for writer in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert "database is locked" not in err
        assert (writer.returncode, out.strip()) == (0, "done"), err[-2000:]
    check = python(SETTINGS + """
with connection.cursor() as cursor:
    cursor.execute("SELECT COUNT(*), COUNT(DISTINCT n) FROM counter")
    print(*cursor.fetchone())
""", database=database)
    assert check.communicate(timeout=120)[0].split() == ["901", "901"]  # every write kept, none lost to a race


def test_links_follow_the_port_unless_site_url_is_set(tmp_path):
    code = SETTINGS + """
from dispatcher.ops.links import admin_link, api_link
print(admin_link("admin:dispatcher_delivery_change", 7), api_link("records/Deals/3/"))
"""
    on_9123 = python(code, database=tmp_path / "db.sqlite3", PORT="9123").communicate(timeout=120)[0]
    assert on_9123.split() == ["http://127.0.0.1:9123/admin/dispatcher/delivery/7/change/",
                               "http://127.0.0.1:9123/api/v1/records/Deals/3/"]
    behind_proxy = python(code, database=tmp_path / "db.sqlite3", PORT="9123",
                          SITE_URL="https://crm.example.com/").communicate(timeout=120)[0]
    assert behind_proxy.split() == ["https://crm.example.com/admin/dispatcher/delivery/7/change/",
                                    "https://crm.example.com/api/v1/records/Deals/3/"]
