"""Connecting to Temporal the same way everywhere (client, worker, tests, replayer)."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from runtime.settings import Settings

DATA_CONVERTER = pydantic_data_converter


async def connect(
    settings: Settings, *, interceptors: Sequence[Interceptor] = (), runtime: Runtime | None = None
) -> Client:
    """`interceptors` (tracing) also apply to every worker built on this client; `runtime`
    (metrics) is the SDK's default one unless the process serves its own metrics."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        api_key=api_key,
        tls=bool(api_key),
        interceptors=interceptors,
        runtime=runtime,
    )
