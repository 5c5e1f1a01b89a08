"""Study storage: SQLite in the study directory by default, any SQLAlchemy URL for many machines.

Dead workers: every RDB storage is opened with a heartbeat. A running trial whose worker stops
recording heartbeats for ``grace`` seconds is marked FAIL by the next worker that looks
(``optuna.storages.fail_stale_trials``), and Optuna's ``RetryFailedTrialCallback`` puts a copy
of it back in the queue, so the study stays consistent and no finished trial is touched.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.errors import ConfigError

if TYPE_CHECKING:
    import optuna


def default_url(study_dir: str | Path) -> str:
    return f"sqlite:///{Path(study_dir).resolve() / 'study.db'}"


def open_storage(url: str, heartbeat: int = 30, max_retry: int = 1) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats and re-queueing of trials whose worker died."""
    import optuna
    import sqlalchemy.exc

    url = with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # concurrent workers on one SQLite file wait for the write lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    # RetryHeartbeatStaleTrialCallback and heartbeat_stale_trial_callback are Optuna 4.9's
    # names (before: RetryFailedTrialCallback, failed_trial_callback): hence optuna >= 4.9
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    try:
        with quiet_optuna():
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=int(heartbeat),
                grace_period=int(2 * heartbeat + 1),
                heartbeat_stale_trial_callback=retry(max_retry=max_retry),
            )
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise ConfigError(
            f"tune.storage: {url!r} is not a usable SQLAlchemy URL ({exc}); write e.g. "
            "sqlite:///study.db or postgresql://user@host/db"
        ) from None
    except (ModuleNotFoundError, ImportError) as exc:
        raise ConfigError(
            f"tune.storage: cannot open {_redact(url)}: its database driver is not installed "
            f"({str(exc).splitlines()[0]}); for PostgreSQL: pip install psycopg2-binary and "
            "write postgresql+psycopg2://user@host/db"
        ) from None
    except sqlalchemy.exc.OperationalError as exc:
        raise ConfigError(
            f"tune.storage: cannot open {_redact(url)}: {str(exc).splitlines()[0]}"
        ) from None


def with_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy 2.1 defaults to psycopg 3, while
    trainwell's ``postgres`` extra installs psycopg2; an explicit ``+driver`` is left alone."""
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.partition("://")[2]
    return url


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings about heartbeats, which trainwell relies
    on."""
    import optuna

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        yield


def _redact(url: str) -> str:
    """The URL with any password hidden."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    user = cred.split(":", 1)[0]
    return f"{scheme}//{user}:***@{tail}"


class Heartbeat:
    """Record a running trial's heartbeat every ``interval`` seconds in a daemon thread.

    Storages without heartbeats (Optuna's in-memory one) are left alone.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int) -> None:
        self.trial_id = trial_id
        # the heartbeat methods belong to RDB storages (and the cache around them) only
        self._interval: int | None = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self._record = getattr(storage, "record_heartbeat", None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self._interval and self._record is not None:
            self._record(self.trial_id)
            self._thread = threading.Thread(target=self._beat, args=(self._interval,), daemon=True)
            self._thread.start()
        return self

    def _beat(self, interval: float) -> None:
        record = self._record
        while record is not None and not self._stop.wait(interval):
            try:
                record(self.trial_id)
            except Exception:  # noqa: BLE001 - a missed beat must not kill the trial
                pass

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["Heartbeat", "default_url", "open_storage", "quiet_optuna", "with_driver"]
