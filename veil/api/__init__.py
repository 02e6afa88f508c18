"""The HTTP side of ``veil serve``: the native REST API and the bucket-event webhooks."""

from veil.api.app import Service, create_app

__all__ = ["Service", "create_app"]
