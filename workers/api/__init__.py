"""The HTTP service: `/health`, `/internal/status`, Twilio webhooks and unsubscribe links."""

from workers.api.app import ApiDependencies, create_app

__all__ = ["ApiDependencies", "create_app"]
