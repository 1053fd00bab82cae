"""`lakeforge serve`: wire the dataset's registered model, its inference log
and the HTTP app together, and run uvicorn until SIGINT/SIGTERM.

No SparkSession is built and no JVM starts: the model is the ONNX form train
logged and checked, and the inference log is written with delta-rs.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import uvicorn

from lakeforge.config import JobConfig
from lakeforge.errors import ConfigError
from lakeforge.serving import scorer
from lakeforge.serving.online_log import OnlineLog
from lakeforge.serving.server import create_app
from lakeforge.storage.paths import tables_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    alias: str = "champion"
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 1000
    reload_seconds: float = 10.0
    inference_log: bool = True


def run(cfg: JobConfig, options: ServeOptions) -> None:
    """Serve until the process is told to stop; the inference log is flushed
    on the way out. Raises InputNotFound / NotServable when the alias names
    no model this server can run."""
    ds = cfg.dataset
    if ds.train is None:
        raise ConfigError(f"{ds.name}: no `train` section: no model to serve")
    name = ds.train.registry.model_name or ds.name
    protected = frozenset(ds.privacy.columns) if ds.privacy is not None else frozenset()
    loader = functools.partial(
        scorer.load,
        cfg.settings.mlflow.tracking_uri,
        name,
        options.alias,
        protected=protected,
    )
    current = scorer.Scorer.start(loader, options.reload_seconds)
    online_log = (
        OnlineLog(tables_for(cfg.settings, ds.name).online_predictions)
        if options.inference_log
        else None
    )
    app = create_app(current, online_log, max_batch=options.max_batch)
    log.info(
        "serve: %s v%s (%s) on http://%s:%d; following the alias every %gs; inference log %s",
        name,
        current.current.version,
        options.alias,
        options.host,
        options.port,
        options.reload_seconds,
        online_log.path if online_log else "off",
    )
    # the app's lifespan stops the alias thread and flushes the log on shutdown
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=False)
