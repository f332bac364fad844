"""Compute: the online provider router (priority ``high``) and the ``compute_tasks`` queue (``low``).

Other capabilities build on the queue (``shared.compute.queue``) and run their own kinds in the drain
with ``register_executor(kind, fn)``. Importing this package is cheap (no SDKs, no ML libraries).
"""

from shared.compute.kinds import NonRetryable, register_executor

__all__ = ["NonRetryable", "register_executor"]
