"""MLflow: a trainer callback that logs a run to an MLflow tracking store.

With ``[log] mlflow = true`` (a file store at ``<runs_dir>/mlruns``), a folder, a ``file:`` URI,
an ``http(s)://`` tracking server or a database URI (``sqlite:///mlflow.db`` ...), each run
becomes an MLflow run named after its run directory, in the experiment ``trainwell`` (or the one
``MLFLOW_EXPERIMENT_NAME`` names): the flattened config as params, every epoch's record as
metrics (step = the epoch), the final metrics (``test_*``, ``best_*``) and the run directory's
``config.toml``, ``results.json``, ``metrics.jsonl`` and ``report.html`` as artefacts. The MLflow
run id goes to ``meta.json`` under ``mlflow``; a resumed run continues the same MLflow run.

mlflow is imported only when a run logs to it; ``pip install 'trainwell[mlflow]'`` installs it
(mlflow-skinny: the client, without the server).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainwell.errors import ConfigError

INSTALL_HINT = ("log.mlflow needs the mlflow package, which is not installed; install it with "
                "`pip install 'trainwell[mlflow]'`, or remove log.mlflow")
#: URI schemes of the tracking stores MLflow knows (a database may name its driver: mysql+pymysql)
SCHEMES = ("file", "http", "https", "databricks", "sqlite", "postgresql", "mysql", "mssql")
DEFAULT_EXPERIMENT = "trainwell"
SKIP = {"epoch", "step"}
#: the run directory's files logged as artefacts when they exist
ARTIFACTS = ("config.toml", "results.json", "metrics.jsonl", "report.html", "doctor.json")


def mlflow_available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def check_tracking_uri(value: bool | str) -> bool | str:
    """``log.mlflow``'s value as the section accepts it (no mlflow import).

    Raises:
        ValueError: an empty string or an unknown URI scheme (the message lists what is
            allowed), or mlflow is not installed (the message names the extra).
    """
    if value is False:
        return value
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("an empty tracking URI; give true (a file store at "
                             "<runs_dir>/mlruns), a folder, a file: URI, an http(s):// server "
                             "or a database URI (sqlite:///mlflow.db ...)")
        scheme = value.split("://", 1)[0].split("+", 1)[0].lower() if "://" in value else None
        if scheme is not None and scheme not in SCHEMES:
            raise ValueError(f"{value!r} is not a tracking URI mlflow knows: its scheme is one "
                             f"of {', '.join(SCHEMES)}, or a folder (a file store)")
    if not mlflow_available():
        raise ValueError(INSTALL_HINT)
    return value


def tracking_uri(value: bool | str, runs_dir: str | Path) -> str:
    """The URI ``log.mlflow`` stands for: ``true`` -> ``<runs_dir>/mlruns``; a folder -> its
    absolute ``file:`` URI; any URI as it is."""
    if value is True:
        return (Path(runs_dir) / "mlruns").resolve().as_uri()
    text = str(value).strip()
    if "://" in text or text.startswith("file:") or text == "databricks":
        return text
    return Path(text).expanduser().resolve().as_uri()


@contextlib.contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses a file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set ("maintenance
    mode"); the user asked for one, so it is set while the client builds its (cached) store."""
    if not uri.startswith("file:") or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def client_for(uri: str) -> Any:
    """An ``mlflow.tracking.MlflowClient`` on ``uri`` (a file store allowed)."""
    from mlflow.tracking import MlflowClient

    with _file_store_allowed(uri):
        return MlflowClient(tracking_uri=uri)


def params_of(config: dict[str, Any]) -> dict[str, str]:
    """The flattened config as MLflow params (strings; lists as their JSON text)."""
    from trainwell.report.rundata import flatten

    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in flatten(config).items() if value is not None}


def final_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``results.json``'s test metrics as they are (``test_accuracy``) and its best epoch's
    record as ``best_<key>``."""
    out: dict[str, float] = {}
    for prefix, part in (("", results.get("test") or {}), ("best_", results.get("best") or {})):
        for key, value in part.items():
            if key not in SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[prefix + key] = float(value)
    return out


class MLflowLogger:
    """Trainer callback that mirrors a run into MLflow.

    Args:
        run_dir: the run directory (its name is the MLflow run's name; ``meta.json`` gets the
            MLflow run id).
        uri: the tracking URI (see :func:`tracking_uri`).
        config: the run's config as a dict (``Config.to_dict()``), logged as params.
        experiment: the MLflow experiment; default ``MLFLOW_EXPERIMENT_NAME``, else
            ``"trainwell"``.

    Example:
        >>> logger = MLflowLogger("runs/iris", "sqlite:///mlflow.db")  # doctest: +SKIP
    """

    def __init__(self, run_dir: str | Path, uri: str, config: dict[str, Any] | None = None,
                 experiment: str | None = None) -> None:
        if not mlflow_available():
            raise ConfigError(INSTALL_HINT)
        self.run_dir = Path(run_dir)
        self.uri = uri
        self.config = config or {}
        self.experiment = (experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                           or DEFAULT_EXPERIMENT)
        self.client: Any = None
        self.run_id: str | None = None
        self._logged_epoch = 0  # a resumed run skips the epochs MLflow has already

    def before_fit(self, trainer: Any) -> None:
        from trainwell.runs import read_json, write_json_atomic

        self.client = client_for(self.uri)
        meta_path = self.run_dir / "meta.json"
        meta = read_json(meta_path) if meta_path.is_file() else {}
        saved = meta.get("mlflow")
        if not isinstance(saved, dict):
            saved = {}
        if saved.get("run_id") and saved.get("tracking_uri") == self.uri:  # resumed
            self.run_id = str(saved["run_id"])
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "train_loss")
            self._logged_epoch = max((m.step for m in history), default=0)
            return
        found = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(self.experiment))
        run = self.client.create_run(
            experiment_id, run_name=self.run_dir.name,
            tags={"trainwell.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in params_of(self.config).items()]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        if meta_path.is_file():
            meta["mlflow"] = {"tracking_uri": self.uri, "experiment_id": experiment_id,
                              "run_id": self.run_id}
            write_json_atomic(meta_path, meta)

    def after_epoch(self, trainer: Any) -> None:
        record = trainer.history[-1]
        epoch = int(record.get("epoch", trainer.epoch))
        if self.run_id is None or epoch <= self._logged_epoch:
            return
        values = {k: float(v) for k, v in record.items()
                  if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._log_metrics(values, epoch)
        self._logged_epoch = epoch

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def after_run(self, run: Any) -> None:
        """Once the results and the report exist: the final metrics, the artefacts, the end."""
        if self.run_id is None:
            return
        history = run.trainer.history if run.trainer is not None else []
        step = int(history[-1]["epoch"]) if history else 0
        self._log_metrics(final_metrics(run.results), step)
        for name in ARTIFACTS:
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id,
                                   status="FINISHED" if run.status == "completed" else "FAILED")

    def end(self, trainer: Any) -> None:
        """An error or an interruption ends the MLflow run too (a normal end waits for
        :meth:`after_run`, once the results are known)."""
        if self.run_id is None or getattr(trainer, "error", None) is None:
            return
        interrupted = isinstance(trainer.error, KeyboardInterrupt)
        self.client.set_terminated(self.run_id, status="KILLED" if interrupted else "FAILED")


__all__ = ["MLflowLogger", "check_tracking_uri", "client_for", "final_metrics", "params_of",
           "tracking_uri"]
