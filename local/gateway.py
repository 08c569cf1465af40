"""An HTTP gateway on loopback that behaves like API Gateway HTTP APIs (payload 2.0).

It serves exactly the routes template.yaml declares, runs the Lambda authorizer
on authorized routes, and invokes the handlers with API Gateway v2 events.
"""

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from local.runtime import ACCOUNT_ID, REGION, FunctionRuntime
from local.template import HttpRoute, StackSpec

log = logging.getLogger("local.gateway")

_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form")
# Payload limits of API Gateway HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024


def _is_text(content_type: str) -> bool:
    return not content_type or content_type.startswith(_TEXT_TYPES) or "+json" in content_type


# Powertools' API resolver keeps the request it handles on a class attribute (BaseRouter.current_event)
# that every resolver in the process shares: Lambda runs one invocation per process. Here requests arrive
# on threads of one process, so the API's functions run one at a time, whichever gateway calls them;
# otherwise a handler could read another request's event (its body, its caller). The authorizer, a plain
# function, runs outside the lock.
_ONE_RESOLVER_AT_A_TIME = threading.Lock()

# Told of each request served: method, path (with its query), status, milliseconds.
RequestObserver = Callable[[str, str, int, float], None]


class Gateway:
    def __init__(
        self,
        spec: StackSpec,
        runtimes: dict[str, FunctionRuntime],
        api_id: str = "local",
        observer: RequestObserver | None = None,
    ) -> None:
        self.spec = spec
        self.runtimes = runtimes
        self.api_id = api_id
        self.observer = observer

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], list[str], bytes]:
        """Returns status, headers, cookies and body for one request."""
        split = urlsplit(target)
        found = self.spec.find_route(method, split.path)
        if found is None:
            return _json(404, {"message": "Not Found"})
        route, path_params = found
        event = self._event(route, method, split.path, split.query, headers, body, source_ip, path_params)
        if route.authorized:
            denied = self._authorize(route, event)
            if denied is not None:
                return denied
        try:
            with _ONE_RESOLVER_AT_A_TIME:
                result = self.runtimes[route.function].invoke(event)
        except Exception:
            log.exception("%s raised; API Gateway answers 500", route.function)
            return _json(500, {"message": "Internal Server Error"})
        return _response(result)

    def _authorize(
        self, route: HttpRoute, event: dict[str, Any]
    ) -> tuple[int, dict[str, str], list[str], bytes] | None:
        authorizer = self.spec.authorizer
        assert authorizer is not None
        identity = [_identity_value(source, event) for source in authorizer.identity_sources]
        if any(value is None for value in identity):
            return _json(401, {"message": "Unauthorized"})
        request = {
            **{key: value for key, value in event.items() if key not in ("body", "isBase64Encoded")},
            "type": "REQUEST",
            "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/$default/{route.method}{route.path}",
            "identitySource": identity,
        }
        try:
            result = self.runtimes[authorizer.function].invoke(request)
        except Exception:
            log.exception("authorizer raised; API Gateway answers 500")
            return _json(500, {"message": "Internal Server Error"})
        if authorizer.simple_responses:
            allowed = bool(result.get("isAuthorized"))
            context = result.get("context") or {}
        else:
            statements = (result.get("policyDocument") or {}).get("Statement") or []
            allowed = bool(statements) and all(statement.get("Effect") == "Allow" for statement in statements)
            context = result.get("context") or {}
        if not allowed:
            return _json(403, {"message": "Forbidden"})
        event["requestContext"]["authorizer"] = {"lambda": context}
        return None

    def _event(
        self,
        route: HttpRoute,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        source_ip: str,
        path_params: dict[str, str],
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        lowered = {key.lower(): value for key, value in headers.items()}
        query_params: dict[str, list[str]] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            query_params.setdefault(key, []).append(value)
        is_text = _is_text(lowered.get("content-type", ""))
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": path,
            "rawQueryString": query,
            "headers": {key: value for key, value in lowered.items() if key != "cookie"},
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api_id,
                "domainName": lowered.get("host", "127.0.0.1"),
                "domainPrefix": lowered.get("host", "127.0.0.1").split(".")[0],
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": lowered.get("user-agent", ""),
                },
                "requestId": uuid.uuid4().hex[:16],
                "routeKey": route.route_key,
                "stage": "$default",
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(time.time() * 1000),
            },
            "isBase64Encoded": bool(body) and not is_text,
        }
        if "cookie" in lowered:
            event["cookies"] = [cookie.strip() for cookie in lowered["cookie"].split(";")]
        if query_params:
            event["queryStringParameters"] = {key: ",".join(values) for key, values in query_params.items()}
        if path_params:
            event["pathParameters"] = path_params
        if body:
            event["body"] = body.decode("utf-8", errors="replace") if is_text else base64.b64encode(body).decode()
        return event


def _identity_value(source: str, event: dict[str, Any]) -> str | None:
    if source.startswith("$request.header."):
        value = event["headers"].get(source.removeprefix("$request.header.").lower())
    elif source.startswith("$request.querystring."):
        value = (event.get("queryStringParameters") or {}).get(source.removeprefix("$request.querystring."))
    else:
        value = None
    return value or None


def _json(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], list[str], bytes]:
    return status, {"content-type": "application/json"}, [], json.dumps(body).encode()


def _response(result: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """Lambda's answer as API Gateway turns it into HTTP (payload 2.0 rules)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _json(200, result) if isinstance(result, dict) else (200, {}, [], json.dumps(result).encode())
    headers = {key.lower(): str(value) for key, value in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ",".join(str(value) for value in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, list(result.get("cookies") or []), body


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: Gateway
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "sms-platform-local-gateway"

    def _serve(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            status, headers, cookies, body = _json(413, {"message": "Request Entity Too Large"})
            self.rfile.read(length)
        else:
            payload = self.rfile.read(length) if length else b""
            headers_in: dict[str, str] = {}
            for key, value in self.headers.items():
                key = key.lower()
                headers_in[key] = f"{headers_in[key]},{value}" if key in headers_in else value
            status, headers, cookies, body = self.gateway.handle(
                self.command, self.path, headers_in, payload, self.client_address[0]
            )
        self.send_response(status)
        for key, value in headers.items():
            if key not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if self.gateway.observer is not None:
            self.gateway.observer(self.command, self.path, status, (time.perf_counter() - started) * 1000)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, PROPFIND ...) goes to the gateway too, which answers as API Gateway does
        (a JSON 404), instead of http.server's 501 HTML page."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # BaseHTTPRequestHandler's signature
        log.info("%s - %s", self.address_string(), format % args)


class GatewayServer:
    def __init__(self, gateway: Gateway, host: str, port: int) -> None:
        handler = type("GatewayRequestHandler", (_RequestHandler,), {"gateway": gateway})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
