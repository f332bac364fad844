"""Domains and languages from ``configs/logic.yaml`` (``memory`` section)."""

from __future__ import annotations

import re

from shared.config.models import MemoryDomain, MemorySection

_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


class UnknownDomain(ValueError):
    def __init__(self, domain: str, known: list[str]) -> None:
        super().__init__(f"unknown domain {domain!r}; configured domains: {', '.join(sorted(known))}")
        self.domain = domain


def memory_config() -> MemorySection:
    from shared.config.store import get_config

    return get_config().logic.memory


def get_domain(name: str, cfg: MemorySection | None = None) -> MemoryDomain:
    cfg = cfg or memory_config()
    if name not in cfg.domains:
        raise UnknownDomain(name, list(cfg.domains))
    return cfg.domains[name]


def ts_config_for(lang: str, cfg: MemorySection | None = None) -> str:
    """The text search configuration of a language code (``simple`` for codes not configured)."""
    cfg = cfg or memory_config()
    return cfg.languages.get(lang.lower().split("-")[0], "simple")


def detect_lang(text: str, default: str, cfg: MemorySection | None = None) -> str:
    """Cyrillic-dominated text is Russian when ``ru`` is configured; otherwise the default."""
    cfg = cfg or memory_config()
    sample = text[:4000]
    cyr, lat = len(_CYRILLIC.findall(sample)), len(_LATIN.findall(sample))
    if "ru" in cfg.languages and cyr > lat:
        return "ru"
    if cyr == 0 and lat > 0 and "en" in cfg.languages and default not in cfg.languages:
        return "en"
    return default


def search_configs(cfg: MemorySection | None = None) -> list[str]:
    """Distinct configurations a query is parsed with: one per configured language."""
    cfg = cfg or memory_config()
    return sorted(set(cfg.languages.values())) or ["simple"]
