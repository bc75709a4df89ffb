"""Typer commands are synchronous; the Temporal client is not."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from temporalio.client import Client, Interceptor

from runtime.settings import Settings
from runtime.temporal import connect
from starter.context import UserError

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def connect_or_explain(settings: Settings, interceptors: Sequence[Interceptor] = ()) -> Client:
    try:
        return await connect(settings, interceptors=interceptors)
    except Exception as error:
        raise UserError(
            f"cannot reach Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace}): {error}."
            " Start one with `outbound dev-server` or set OUTBOUND_TEMPORAL_ADDRESS."
        ) from None
