"""Lambda: the compute API — user routes ``/v1/compute/tasks`` (the JWT authorizer verifies the token)
and the internal API batch workers poll (``/internal/workers``, per-worker tokens checked by the app)."""

from shared.api.lambda_app import http_handler
from shared.compute.api import router as tasks_router
from shared.compute.router import router as workers_router

handler = http_handler(workers_router, tasks_router, title="workers")
