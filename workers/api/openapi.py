"""The app's API document (OpenAPI for `/v1`), built without a database or Temporal: what
`schemas/openapi.json` holds, `outbound contract` writes and `/v1/openapi.json` serves."""

from __future__ import annotations

from typing import Any

from db.engine import make_engine, make_session_factory
from runtime.settings import Settings
from workers.api.app import ApiDependencies, app_api_document, create_app


def openapi_document() -> dict[str, Any]:
    settings = Settings(database_url="sqlite://", jobs_file=None)
    sessions = make_session_factory(make_engine("sqlite://"))
    return app_api_document(create_app(ApiDependencies(settings, sessions, None, version="v1")))


if __name__ == "__main__":  # regenerate schemas/openapi.json
    import json

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))  # noqa: T201
