"""A fake OpenAI embeddings API on 127.0.0.1 (``POST /v1/embeddings``), for the real ``openai`` client.

Speaks the wire format: ``input`` as a string or a list of strings, ``dimensions``, ``encoding_format``
``float`` or ``base64`` (little-endian float32, what the SDK asks for by default), ``usage``, and OpenAI's
error body. Vectors are deterministic bag-of-words hashes, so similar texts get similar vectors.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

from tests.fakes.http import FakeServer, Request, Response


def fake_vector(text: str, dimensions: int) -> list[float]:
    vec = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()) or [text]:
        digest = hashlib.sha256(word.encode("utf-8")).digest()
        for i in range(0, 12, 3):
            slot = int.from_bytes(digest[i : i + 2], "little") % dimensions
            vec[slot] += 1.0 if digest[i + 2] % 2 else -1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


class FakeOpenAIEmbeddings:
    def __init__(self, server: FakeServer, *, default_dimensions: int = 64, api_key: str = "sk-test") -> None:
        self.server, self.default_dimensions, self.api_key = server, default_dimensions, api_key
        server.route("POST", "/v1/embeddings", self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def calls(self) -> list[Request]:
        return self.server.calls("/v1/embeddings")

    def handle(self, req: Request) -> Response:
        if req.headers.get("Authorization", req.headers.get("authorization")) != f"Bearer {self.api_key}":
            return Response(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                        "param": None,
                    }
                },
            )
        body = req.json()
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) and x for x in inputs):
            return Response(
                400,
                {
                    "error": {
                        "message": "'input' must be a non-empty string or array of strings",
                        "type": "invalid_request_error",
                        "param": "input",
                        "code": None,
                    }
                },
            )
        dims = int(body.get("dimensions") or self.default_dimensions)
        fmt = body.get("encoding_format", "float")
        data = []
        for i, text in enumerate(inputs):
            vec = fake_vector(text, dims)
            emb: object = (
                base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode("ascii") if fmt == "base64" else vec
            )
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in inputs)
        return Response(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
