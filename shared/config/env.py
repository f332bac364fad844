"""Every environment variable the project reads, named in one place.

Resolution order everywhere: explicit argument > environment > YAML default.
A required setting that is missing raises ``MissingSetting`` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class MissingSetting(RuntimeError):
    """A required setting is absent; the message names the variable to set."""

    def __init__(self, variable: str, purpose: str) -> None:
        super().__init__(f"{variable} is not set: {purpose}. Set the environment variable {variable}.")
        self.variable = variable


@dataclass(frozen=True)
class EnvVar:
    name: str
    purpose: str
    default: str | None = None
    secret: bool = False

    def get(self, explicit: str | None = None) -> str | None:
        if explicit is not None:
            return explicit
        value = os.environ.get(self.name)
        if value is not None and value != "":
            return value
        return self.default

    def require(self, explicit: str | None = None) -> str:
        value = self.get(explicit)
        if value is None or value == "":
            raise MissingSetting(self.name, self.purpose)
        return value


PROJECT_ROOT = Path(__file__).resolve().parents[2]

# --- where things are --------------------------------------------------------
DATABASE_URL = EnvVar("DATABASE_URL", "PostgreSQL URL; unset locally means the embedded server")
LOCAL_DIR = EnvVar("HYBRID_LOCAL_DIR", "git-ignored folder for local state", str(PROJECT_ROOT / ".local"))
CONFIG_DIR = EnvVar(
    "HYBRID_CONFIG_DIR", "folder holding logic.yaml and profiles.yaml", str(PROJECT_ROOT / "configs")
)
CONFIG_RELOAD_SECONDS = EnvVar("CONFIG_RELOAD_SECONDS", "how often YAML config is checked for edits", None)
CONFIG_S3_URI = EnvVar("CONFIG_S3_URI", "s3://bucket/prefix/ holding logic.yaml/profiles.yaml overrides")
CONFIG_SSM_PREFIX = EnvVar("CONFIG_SSM_PREFIX", "SSM parameter path prefix holding YAML overrides")
ENVIRONMENT = EnvVar("HYBRID_ENV", "deployment environment: local, dev or prod", "local")

# --- database behaviour ------------------------------------------------------
DB_CONNECT_TIMEOUT = EnvVar("DB_CONNECT_TIMEOUT", "seconds to wait for a database connection", "5")
DB_STATEMENT_TIMEOUT_MS = EnvVar("DB_STATEMENT_TIMEOUT_MS", "statement_timeout for every session", "15000")
DB_POOL_SIZE = EnvVar("DB_POOL_SIZE", "connections per process (1 in Lambda)", None)

# --- auth --------------------------------------------------------------------
TELEGRAM_BOT_TOKEN = EnvVar("TELEGRAM_BOT_TOKEN", "the bot token that signs WebApp initData", secret=True)
TELEGRAM_BOT_ID = EnvVar("TELEGRAM_BOT_ID", "bot id for Ed25519 third-party initData validation")
TELEGRAM_TEST_ENV = EnvVar("TELEGRAM_TEST_ENV", "1 to accept Telegram's test-environment Ed25519 key", "0")
JWT_ISSUER = EnvVar("JWT_ISSUER", "the iss claim and OpenID issuer URL", "http://127.0.0.1:8000")
JWT_AUDIENCE = EnvVar("JWT_AUDIENCE", "the aud claim", "hybrid-webapp")
JWT_TTL_SECONDS = EnvVar("JWT_TTL_SECONDS", "access token lifetime", None)
JWT_PRIVATE_KEY = EnvVar("JWT_PRIVATE_KEY", "PEM of the RS256 signing key", secret=True)
JWT_PRIVATE_KEY_SECRET_ID = EnvVar("JWT_PRIVATE_KEY_SECRET_ID", "Secrets Manager id of the signing key PEM")
JWT_PRIVATE_KEY_SSM = EnvVar("JWT_PRIVATE_KEY_SSM", "SSM SecureString name of the signing key PEM")
JWT_PUBLIC_KEYS_EXTRA = EnvVar("JWT_PUBLIC_KEYS_EXTRA", "PEMs of retired keys still accepted (rotation)")
ADMIN_TELEGRAM_IDS = EnvVar("ADMIN_TELEGRAM_IDS", "comma-separated Telegram ids with the admin role", "")

# --- HTTP --------------------------------------------------------------------
MAX_BODY_BYTES = EnvVar("MAX_BODY_BYTES", "largest accepted request body", None)
LOG_LEVEL = EnvVar("LOG_LEVEL", "logging level", "INFO")
SERVICE_NAME = EnvVar("POWERTOOLS_SERVICE_NAME", "service name in logs and metrics", "hybrid")
METRICS_NAMESPACE = EnvVar("POWERTOOLS_METRICS_NAMESPACE", "CloudWatch metrics namespace", "Hybrid")

# --- providers ---------------------------------------------------------------
OPENAI_API_KEY = EnvVar("OPENAI_API_KEY", "OpenAI API key", secret=True)
OPENAI_BASE_URL = EnvVar("OPENAI_BASE_URL", "OpenAI-compatible base URL (vLLM, Ollama, a fake)")
RUNPOD_API_KEY = EnvVar("RUNPOD_API_KEY", "RunPod API key", secret=True)

ALL: tuple[EnvVar, ...] = tuple(v for v in globals().values() if isinstance(v, EnvVar))
SECRET_NAMES: frozenset[str] = frozenset(v.name for v in ALL if v.secret)


def local_dir(explicit: str | Path | None = None) -> Path:
    path = Path(LOCAL_DIR.get(str(explicit) if explicit is not None else None) or ".local")
    path.mkdir(parents=True, exist_ok=True)
    return path
