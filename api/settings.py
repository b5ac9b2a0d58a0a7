"""Settings from CSP_TRACKER_* environment variables (or `csp-tracker` --options).

The table of all settings is in docs/api.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections.heads import Signer
from projections.projector import HeadPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSP_TRACKER_", extra="ignore")

    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path = Path("csp-tracker.db")
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_db: str = "csp_tracker"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_schema: str = "public"
    # Seconds to wait for a PostgreSQL connection (connecting, or a free one from the pool)
    # before failing, rather than the library's 30.
    postgres_connect_timeout: int = Field(5, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_lag: int = Field(1000, ge=0)
    # Request bodies above this many bytes are refused with 413 (api/body.py).
    max_body_bytes: int = Field(1_048_576, ge=1)
    # `/metrics` wants `Authorization: Bearer <this>` when set; when unset (or empty), it
    # answers loopback clients only (127.0.0.0/8, ::1).
    metrics_token: SecretStr | None = None
    demo_on_empty: bool = True
    run_projections: bool = True
    # A JSON file of offer families (the shape of domain/data/offers.json) that extends the
    # shipped catalogue of equivalent offers.
    offer_catalogue: Path | None = None
    # The ledger's Ed25519 signing key: a file outside the database (`csp-tracker ledger
    # keygen`; `serve` and `demo` create it when missing). Heads every N events or T seconds.
    ledger_key: Path = Path("csp-tracker-ledger.key")
    ledger_head_every: int = Field(1000, ge=1)
    ledger_head_seconds: float = Field(60.0, gt=0)
    # The web pages' session secret: a file every serving process reads (`serve` creates
    # csp-tracker-session.key when unset). Unset in an app built without it: a secret made
    # per process, so sessions end when it stops.
    session_key: Path | None = None
    # Concurrent saves of one process are committed in one store transaction of at most this
    # many events (domain/group_commit.py); 1 commits every save alone.
    group_commit_max_events: int = Field(1000, ge=1, le=10_000)
    # How long a group's leader may wait for the writers of the last group to come back, in
    # milliseconds (domain/group_commit.py, GroupCommit._gather); 0: never waits.
    group_commit_linger_ms: float = Field(1.0, ge=0, le=50)
    # How long a single post may wait for the appender's writer thread before it is refused,
    # never recorded (503 append_timeout; api/appender.py), in seconds.
    append_deadline_seconds: float = Field(10.0, gt=0, le=300)
    # Partner Center notifications changed longer ago than this are refused (replays).
    ingest_window_hours: float = Field(24.0, gt=0)

    def head_policy(self) -> HeadPolicy | None:
        """How the projector signs tree heads; None when there is no key file."""
        if not self.ledger_key.exists():
            return None
        return HeadPolicy(
            Signer.from_file(self.ledger_key), self.ledger_head_every, self.ledger_head_seconds
        )

    def ensure_ledger_key(self) -> tuple[Signer, bool]:
        """The signing key, created when missing: (signer, created)."""
        if self.ledger_key.exists():
            return Signer.from_file(self.ledger_key), False
        return Signer.generate(self.ledger_key), True

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment for Tracker(env=...) and ReadSide(tracker, env)."""
        env = self._store_env()
        env["GROUP_COMMIT_MAX_EVENTS"] = str(self.group_commit_max_events)
        env["GROUP_COMMIT_LINGER_MS"] = str(self.group_commit_linger_ms)
        # The library reads CSP_TRACKER_<KEY> (the Tracker's name) before <KEY>, and several of
        # our own variables have such names (CSP_TRACKER_POSTGRES_PORT...): pin those to these
        # settings, or a variable would win over an option (`csp-tracker --postgres-port`).
        env.update({f"CSP_TRACKER_{key}": value for key, value in env.items()})
        if self.offer_catalogue is not None:
            env["OFFER_CATALOGUE"] = str(self.offer_catalogue)
        return env

    def _store_env(self) -> dict[str, str]:
        if self.store == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "10",
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": str(self.postgres_port),
            "POSTGRES_DBNAME": self.postgres_db,
            "POSTGRES_USER": self.postgres_user,
            "POSTGRES_PASSWORD": self.postgres_password,
            "POSTGRES_SCHEMA": self.postgres_schema,
            "POSTGRES_CONNECT_TIMEOUT": str(self.postgres_connect_timeout),
        }
