"""RS256 signing keys and the JWKS built from them.

Where the signing key comes from, first match wins:
  ``JWT_PRIVATE_KEY`` (PEM in the environment) > ``JWT_PRIVATE_KEY_SECRET_ID`` (Secrets Manager) >
  ``JWT_PRIVATE_KEY_SSM`` (SSM SecureString) > locally only: generated into ``.local/keys/``.
Every key of the ring is published in the JWKS and accepted for verification, so a key can rotate:
publish the new one, switch signing, keep the old one (``JWT_PUBLIC_KEYS_EXTRA`` or an older local file)
until the last token it signed has expired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import env


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64u(n: int) -> str:
    return _b64u(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class PublicKey:
    kid: str
    key: rsa.RSAPublicKey

    def jwk(self) -> dict[str, str]:
        nums = self.key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": _int_b64u(nums.n),
            "e": _int_b64u(nums.e),
        }


def thumbprint(key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a stable kid derived from the key itself."""
    nums = key.public_numbers()
    canonical = json.dumps(
        {"e": _int_b64u(nums.e), "kty": "RSA", "n": _int_b64u(nums.n)}, separators=(",", ":"), sort_keys=True
    )
    return _b64u(hashlib.sha256(canonical.encode("ascii")).digest())


class KeyRing:
    def __init__(self, signing_key: rsa.RSAPrivateKey, extra_public: list[rsa.RSAPublicKey] | None = None):
        self.signing_key = signing_key
        self.signing_kid = thumbprint(signing_key.public_key())
        keys = [PublicKey(self.signing_kid, signing_key.public_key())]
        for pub in extra_public or []:
            kid = thumbprint(pub)
            if all(k.kid != kid for k in keys):
                keys.append(PublicKey(kid, pub))
        self.public_keys = {k.kid: k for k in keys}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.public_keys.values()]}

    def private_pem(self) -> bytes:
        return self.signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _load_private(pem: str | bytes) -> rsa.RSAPrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("JWT signing key must be an RSA private key")
    return key


def _split_pems(blob: str) -> list[str]:
    marker = "-----BEGIN"
    return [marker + part for part in blob.split(marker)[1:]]


def _load_public(pem: str) -> rsa.RSAPublicKey:
    data = pem.encode()
    if b"PRIVATE KEY" in data:
        return _load_private(data).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("JWT verification keys must be RSA public keys")
    return key


def _local_ring(folder: Path) -> KeyRing:
    """Newest ``signing-*.pem`` signs; older ones stay valid for verification."""
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("signing-*.pem"))
    if not files:
        path = folder / f"signing-{int(time.time())}.pem"
        key = generate_private_key()
        path.write_bytes(KeyRing(key).private_pem())
        path.chmod(0o600)
        files = [path]
    newest = _load_private(files[-1].read_bytes())
    older = [_load_private(f.read_bytes()).public_key() for f in files[:-1]]
    return KeyRing(newest, older)


def rotate_local_key(folder: Path) -> str:
    """Write a new local signing key; returns its kid. Old keys remain published."""
    folder.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    path = folder / f"signing-{time.time_ns()}.pem"
    path.write_bytes(KeyRing(key).private_pem())
    path.chmod(0o600)
    return thumbprint(key.public_key())


def load_keyring() -> KeyRing:
    extra = [_load_public(p) for p in _split_pems(env.JWT_PUBLIC_KEYS_EXTRA.get() or "")]
    pem = env.JWT_PRIVATE_KEY.get()
    if pem:
        return KeyRing(_load_private(pem), extra)
    secret_id = env.JWT_PRIVATE_KEY_SECRET_ID.get()
    if secret_id:
        from aws_lambda_powertools.utilities import parameters

        return KeyRing(_load_private(str(parameters.get_secret(secret_id, max_age=300))), extra)
    ssm_name = env.JWT_PRIVATE_KEY_SSM.get()
    if ssm_name:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_parameter(ssm_name, decrypt=True, max_age=300)
        return KeyRing(_load_private(str(value)), extra)
    if env.ENVIRONMENT.get() != "local":
        raise env.MissingSetting(
            "JWT_PRIVATE_KEY_SECRET_ID",
            "no JWT signing key configured (or JWT_PRIVATE_KEY / JWT_PRIVATE_KEY_SSM)",
        )
    ring = _local_ring(env.local_dir() / "keys")
    for pub in extra:
        kid = thumbprint(pub)
        ring.public_keys.setdefault(kid, PublicKey(kid, pub))
    return ring
