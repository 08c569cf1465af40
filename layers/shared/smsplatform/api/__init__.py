"""The HTTP API edge: routers, request/response models and the problem+json mapping."""
