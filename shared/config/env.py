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

# --- gpu_handlers/embedding (read by the worker itself with os.environ: the image has no shared/) --
EMBED_MODEL = EnvVar("EMBED_MODEL", "embedding model name or folder of the GPU worker", "BAAI/bge-m3")
RERANK_MODEL = EnvVar(
    "RERANK_MODEL", "reranker name or folder of the GPU worker ('none': no rerank)", "BAAI/bge-reranker-v2-m3"
)
EMBED_DEVICE = EnvVar("EMBED_DEVICE", "torch device of the GPU worker (default cuda when present, else cpu)")
EMBED_DTYPE = EnvVar("EMBED_DTYPE", "fp16 (default) | bf16 | fp32 on GPU; CPU is always fp32", "fp16")
EMBED_MAX_LENGTH = EnvVar("EMBED_MAX_LENGTH", "token limit per text (default: the model's)")
RERANK_MAX_LENGTH = EnvVar("RERANK_MAX_LENGTH", "token limit per query+document pair", "512")
EMBED_MAX_BATCH_TOKENS = EnvVar("EMBED_MAX_BATCH_TOKENS", "padded tokens per forward pass", "16384")
EMBED_MAX_TEXTS = EnvVar("EMBED_MAX_TEXTS", "texts (or documents) per job", "2048")
EMBED_MAX_TEXT_CHARS = EnvVar("EMBED_MAX_TEXT_CHARS", "characters per text", "100000")
HANDLER_CONCURRENCY = EnvVar("HANDLER_CONCURRENCY", "jobs one GPU worker takes at once", "1")

# --- media -------------------------------------------------------------------
MEDIA_STORAGE = EnvVar("MEDIA_STORAGE", "media blob store: local or s3 (overrides media.storage.backend)")
MEDIA_LOCAL_DIR = EnvVar("MEDIA_LOCAL_DIR", "folder of the local media blob store")
MEDIA_BUCKET = EnvVar("MEDIA_BUCKET", "S3 bucket of media assets")
MEDIA_S3_ENDPOINT_URL = EnvVar("MEDIA_S3_ENDPOINT_URL", "S3-compatible endpoint (a local server in tests)")
MEDIA_CDN_BASE_URL = EnvVar("MEDIA_CDN_BASE_URL", "CloudFront base URL of the media bucket")
MEDIA_PUBLIC_BASE_URL = EnvVar("MEDIA_PUBLIC_BASE_URL", "base URL prefixed to local asset paths", "")
AVATAR_API_URL = EnvVar("AVATAR_API_URL", "base URL of the talking-head avatar API")
AVATAR_API_KEY = EnvVar("AVATAR_API_KEY", "API key of the avatar API", secret=True)

# --- compute -----------------------------------------------------------------
RUNPOD_EMBED_ENDPOINT_ID = EnvVar("RUNPOD_EMBED_ENDPOINT_ID", "RunPod endpoint id of the bge-m3 handler")
TOGETHER_API_KEY = EnvVar("TOGETHER_API_KEY", "Together AI API key", secret=True)
INTELLIGENCE_API_URL = EnvVar("INTELLIGENCE_API_URL", "base URL of the intelligence_api embedding service")
INTELLIGENCE_API_KEY = EnvVar("INTELLIGENCE_API_KEY", "API key of the intelligence_api service", secret=True)
COMPUTE_CALLBACK_SECRET = EnvVar(
    "COMPUTE_CALLBACK_SECRET", "HMAC key that signs task completion webhooks", secret=True
)
HYBRID_API_URL = EnvVar("HYBRID_API_URL", "base URL a pull worker talks to", "http://127.0.0.1:8000")
HYBRID_WORKER_TOKEN = EnvVar("HYBRID_WORKER_TOKEN", "a pull worker's token (hybrid workers add)", secret=True)

# --- genlayers (LLM providers; a provider names its key variable in logic.yaml) --
ANTHROPIC_API_KEY = EnvVar("ANTHROPIC_API_KEY", "Anthropic API key", secret=True)
GROQ_API_KEY = EnvVar("GROQ_API_KEY", "Groq API key", secret=True)
OPENROUTER_API_KEY = EnvVar("OPENROUTER_API_KEY", "OpenRouter API key", secret=True)
GEMINI_API_KEY = EnvVar("GEMINI_API_KEY", "Google Gemini API key", secret=True)

# --- deployment (Lambda) -------------------------------------------------------
SECRET_IDS = EnvVar(
    "SECRET_IDS",
    "comma-separated VAR=secret-id pairs read at start (Secrets Manager; 'ssm:/name' for SSM SecureString)",
    "",
)
DATABASE_HOST = EnvVar("DATABASE_HOST", "host (RDS Proxy endpoint) used with a JSON database secret")
DATABASE_NAME = EnvVar("DATABASE_NAME", "database name used with a JSON database secret", "hybrid")
KNOWLEDGE_PREFIX = EnvVar(
    "KNOWLEDGE_PREFIX", "S3 key prefix the indexer ingests: <prefix>/<domain>/...", "knowledge"
)

ALL: tuple[EnvVar, ...] = tuple(v for v in globals().values() if isinstance(v, EnvVar))
SECRET_NAMES: frozenset[str] = frozenset(v.name for v in ALL if v.secret)


def local_dir(explicit: str | Path | None = None) -> Path:
    path = Path(LOCAL_DIR.get(str(explicit) if explicit is not None else None) or ".local")
    path.mkdir(parents=True, exist_ok=True)
    return path
