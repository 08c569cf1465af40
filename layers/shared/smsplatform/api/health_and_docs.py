"""Public routes: health check, the generated OpenAPI document and its Swagger UI."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from smsplatform.core import db
from smsplatform.core.observability import logger

SWAGGER_UI_VERSION = "5.17.14"
# Swagger UI's two files, shipped in the layer (swagger_ui/, from npm's swagger-ui-dist, Apache-2.0) and served
# by this function, so the page works where the browser has no internet. Subresource Integrity still pins them:
# the sha384 of swagger-ui-dist-5.17.14.tgz's package/swagger-ui.css and package/swagger-ui-bundle.js.
SWAGGER_UI_DIR = Path(__file__).parent / "swagger_ui"
SwaggerAsset = Literal["swagger-ui.css", "swagger-ui-bundle.js"]
_ASSET_TYPES = {"swagger-ui.css": "text/css; charset=utf-8", "swagger-ui-bundle.js": "text/javascript; charset=utf-8"}
SWAGGER_UI_INTEGRITY = {
    "swagger-ui.css": "sha384-wxLW6kwyHktdDGr6Pv1zgm/VGJh99lfUbzSn6HNHBENZlCN7W602k9VkGdxuFvPn",
    "swagger-ui-bundle.js": "sha384-wmyclcVGX/WhUkdkATwhaK1X1JtiNrr2EoYJ+diV3vj4v6OC5yCeSu+yW13SYJep",
}
_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Bulk SMS Platform API</title>
  <link rel="stylesheet" href="docs/swagger-ui.css?v={version}" integrity="{css}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js?v={version}" integrity="{js}"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]


@lru_cache(maxsize=1)
def openapi_document() -> str:
    """Generated from every router of the API, not only those this function serves."""
    from smsplatform.api import openapi
    from smsplatform.api.catalog import all_routers
    from smsplatform.api.resolver import create_resolver

    generated = json.loads(create_resolver(*all_routers()).get_openapi_json_schema())
    return json.dumps(openapi.complete(generated))


def health_and_docs_routes() -> Router:
    router = Router()

    @router.get("/v1/health", tags=["Platform"], summary="Liveness and database reachability")
    def health() -> Response[Any]:
        try:
            with db.transaction() as conn:
                conn.execute("SELECT 1")
        except Exception:
            logger.exception("health check: database unreachable")
            body = HealthResponse(status="degraded", database="unavailable")
            return Response(status_code=503, content_type="application/json", body=body.model_dump())
        body = HealthResponse(status="ok", database="ok")
        return Response(status_code=200, content_type="application/json", body=body.model_dump())

    @router.get("/v1/openapi.json", tags=["Platform"], summary="This API's OpenAPI 3 document")
    def openapi() -> Response[str]:
        return Response(status_code=200, content_type="application/json", body=openapi_document())

    @router.get("/v1/docs", tags=["Platform"], summary="Swagger UI for this API")
    def docs() -> Response[str]:
        return Response(
            status_code=200,
            content_type="text/html; charset=utf-8",
            body=_SWAGGER_PAGE.format(
                version=SWAGGER_UI_VERSION,
                css=SWAGGER_UI_INTEGRITY["swagger-ui.css"],
                js=SWAGGER_UI_INTEGRITY["swagger-ui-bundle.js"],
            ),
        )

    @router.get(
        "/v1/docs/<asset>",
        tags=["Platform"],
        summary="Swagger UI's script and stylesheet",
        description="swagger-ui-bundle.js or swagger-ui.css, served from the platform itself.",
        compress=True,
        cache_control="public, max-age=86400",
    )
    def docs_asset(asset: SwaggerAsset) -> Response[str]:
        return Response(status_code=200, content_type=_ASSET_TYPES[asset], body=_asset(asset))

    return router


@lru_cache(maxsize=2)
def _asset(name: str) -> str:
    return (SWAGGER_UI_DIR / name).read_text(encoding="utf-8")
