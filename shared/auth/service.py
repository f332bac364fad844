"""Wiring of the auth pieces from configuration: which initData verifier, which keys, which claims."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shared.auth import telegram
from shared.auth.keys import KeyRing, load_keyring
from shared.auth.tokens import TokenService
from shared.config import env
from shared.config.store import get_config

Verifier = Callable[[str, "int | None", "float | None"], telegram.InitData]


@dataclass(frozen=True)
class TelegramVerifier:
    """Verifies initData with the bot token, or with Telegram's Ed25519 key when only the bot id is known."""

    bot_token: str | None
    bot_id: int | None
    test_environment: bool = False

    @classmethod
    def from_env(cls) -> TelegramVerifier:
        token = env.TELEGRAM_BOT_TOKEN.get()
        bot_id = env.TELEGRAM_BOT_ID.get()
        if not token and not bot_id:
            if env.ENVIRONMENT.get() == "local":
                token = dev_bot_token()
            else:
                raise env.MissingSetting(
                    "TELEGRAM_BOT_TOKEN", "initData cannot be verified (or set TELEGRAM_BOT_ID)"
                )
        if bot_id and not bot_id.isdigit():
            raise ValueError("TELEGRAM_BOT_ID must be the numeric bot id")
        return cls(token, int(bot_id) if bot_id else None, env.TELEGRAM_TEST_ENV.get() == "1")

    def verify(
        self,
        init_data: str,
        *,
        max_age: int | None,
        now: float | None = None,
        max_bytes: int = telegram.MAX_INIT_DATA_BYTES,
    ) -> telegram.InitData:
        if self.bot_token:
            return telegram.verify_init_data(
                init_data, self.bot_token, max_age=max_age, now=now, max_bytes=max_bytes
            )
        assert self.bot_id is not None
        return telegram.verify_init_data_third_party(
            init_data,
            self.bot_id,
            test_environment=self.test_environment,
            max_age=max_age,
            now=now,
            max_bytes=max_bytes,
        )


def dev_bot_token() -> str:
    """A local-only bot token kept in .local/, so `make run` works without a real bot."""
    path = env.local_dir() / "dev-bot-token"
    if not path.exists():
        path.write_text(f"1000000001:{secrets.token_urlsafe(27)}")
        path.chmod(0o600)
    return path.read_text().strip()


def admin_ids() -> frozenset[int]:
    raw = env.ADMIN_TELEGRAM_IDS.get() or ""
    return frozenset(int(x) for x in raw.replace(" ", "").split(",") if x.isdigit())


_lock = threading.Lock()
_tokens: TokenService | None = None
_verifier: TelegramVerifier | None = None


def get_token_service() -> TokenService:
    global _tokens
    if _tokens is None:
        with _lock:
            if _tokens is None:
                ring: KeyRing = load_keyring()
                ttl = int(env.JWT_TTL_SECONDS.get() or get_config().logic.auth.jwt_ttl_seconds)
                _tokens = TokenService(
                    ring,
                    issuer=env.JWT_ISSUER.require(),
                    audience=env.JWT_AUDIENCE.require(),
                    ttl_seconds=ttl,
                )
    return _tokens


def get_verifier() -> TelegramVerifier:
    global _verifier
    if _verifier is None:
        with _lock:
            if _verifier is None:
                _verifier = TelegramVerifier.from_env()
    return _verifier


def reset() -> None:
    """Forget cached keys and verifier (tests; a rotated secret is picked up on the next call)."""
    global _tokens, _verifier
    _tokens, _verifier = None, None
