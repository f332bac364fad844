"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter

from shared.db.connection import get_database

router = APIRouter()


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    with get_database().connection() as conn:
        conn.execute("SELECT 1")
    return {"status": "ok"}
