"""The Celery application: configuration comes from Django settings (CELERY_ prefix)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_insecure_start(sender=None, **kwargs) -> None:
    from dispatcher.checks import insecure_start_reason

    if reason := insecure_start_reason("Celery worker" if "Worker" in type(sender).__name__ else "Celery beat"):
        raise SystemExit(reason)  # not an Exception: Celery logs those from signal handlers and goes on


# Celery's names for its pools, and the ones a worker runs with. A drain loop owns its process's sender pool
# (dispatcher/delivery/pool.py) and its signal handling (dispatcher/delivery/stopping.py): prefork gives each
# pool process one loop at a time, solo runs one in the worker. Threads, gevent and eventlet would run several
# in one process (docs/internals/design/worker-pools.md).
SUPPORTED_POOLS = {"prefork": "celery.concurrency.prefork:TaskPool", "solo": "celery.concurrency.solo:TaskPool"}


def worker_pool_refusal(pool: object) -> str | None:
    """Why a worker may not start with this pool (a class, or a name as in -P/worker_pool), or None."""
    from celery.concurrency import ALIASES

    if isinstance(pool, str):
        path = ALIASES.get(pool, pool)
    else:
        path = f"{pool.__module__}:{getattr(pool, '__qualname__', '')}"
    if path in SUPPORTED_POOLS.values():
        return None
    name = next((alias for alias, alias_path in ALIASES.items() if alias_path == path), path)
    return (f"The Celery worker refuses to start with the {name} pool: it would run several drain loops in one "
            "process, sharing its sender pool. Start it with -P prefork (the Procfile's default; --concurrency "
            "sets the processes) or -P solo.")


@signals.worker_init.connect
def _refuse_unsupported_pool(sender=None, **kwargs) -> None:
    if reason := worker_pool_refusal(sender.pool_cls):
        raise SystemExit(reason)


# A worker asked to stop (SIGTERM from honcho on Ctrl-C, systemd or a container runtime) hands back what its
# drains hold within a few seconds and exits: see dispatcher/delivery/stopping.py.
@signals.worker_process_init.connect
def _pool_process_stops_gracefully(**kwargs) -> None:
    from dispatcher.delivery import stopping

    stopping.pool_process_started()


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    from dispatcher.delivery import stopping

    stopping.task_started(task_id=task_id, name=task.name)


@signals.task_postrun.connect
def _task_ended(task_id=None, **kwargs) -> None:
    from dispatcher.delivery import stopping

    stopping.task_ended(task_id=task_id)


@signals.worker_shutting_down.connect
def _worker_stops_its_drains(how=None, **kwargs) -> None:
    from dispatcher.delivery import stopping

    stopping.worker_shutting_down(how=how or "")
