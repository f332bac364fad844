"""Lambda: ingest knowledge uploaded to S3 (``knowledge/<domain>/...``) or named by a direct invoke."""

import tempfile
from pathlib import Path
from typing import Any

from shared.api.lambda_events import BadEvent, as_dict, download, ingest_jobs, lambda_task
from shared.config import env
from shared.db.connection import get_database
from shared.memory37.etl import IngestError, ingest_path


@lambda_task("indexer")
def handler(event: Any, context: Any) -> dict[str, Any]:
    jobs = ingest_jobs(event, prefix=env.KNOWLEDGE_PREFIX.get() or "knowledge")
    results = []
    for job in jobs:
        uri = f"s3://{job.bucket}/{job.key}"
        with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
            source = download(job, Path(tmp))
            try:
                summary = ingest_path(
                    get_database(), domain=job.domain, source=source, lang=job.lang, source_label=uri
                )
            except IngestError as exc:  # e.g. an unknown domain in the key: the event is wrong, not us
                raise BadEvent(f"{uri}: {exc}") from exc
        results.append({"s3_uri": uri, **as_dict(summary)})
    return {"statusCode": 200, "ingested": results}
