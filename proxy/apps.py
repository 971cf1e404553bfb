"""The two quart-trio apps: the inference app (``/v1/...``, ``/health``) and the admin app (``/health``,
``/ready``, ``/admin/status``), each wrapped in `RequestMiddleware`, with the one error handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from adapters.errors import NotReady
from compat.errors import RouteNotFound, ShuttingDown
from compat.openai.models import model_list, model_object

from . import chat as chat_views
from . import embeddings as embedding_views
from . import playground
from . import ws as ws_views
from .asgi import RequestMiddleware
from .errors import encode_json, render, translate_http_exception
from .inflight import SCOPE_KEY, RequestInfo

if TYPE_CHECKING:
    from .daemon import Daemon

OWNED_BY = "trinfer"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype="application/json")


def playground_response(name: str) -> Response:
    """A file of the playground page, with its security headers; 404 for any other name."""
    found = playground.asset(name)
    if found is None:
        raise RouteNotFound(f"Invalid URL (GET {playground.ASSET_PREFIX}{name})")
    return Response(found.body, status=200, content_type=found.content_type, headers=found.headers())


def _new_app(name: str, daemon: Daemon) -> QuartTrio:
    server = daemon.config.server
    app = QuartTrio(name)
    # Deliberate limits: no whole-response timeout (streams last as long as the generation; each write is
    # bounded by write_timeout_s instead); bodies are capped and must arrive within write_timeout_s.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = server.max_body_bytes
    app.config["BODY_TIMEOUT"] = server.write_timeout_s
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    async def handle_error(exc: Exception) -> Response:
        """The one error handler: every error of either app leaves through `proxy.errors.render`."""
        info: RequestInfo | None = cast(Mapping[str, Any], request.scope).get(SCOPE_KEY)
        request_id = info.request_id if info is not None else "unknown"
        allow: list[str] | None = None
        if isinstance(exc, WerkzeugMethodNotAllowed):
            allow = sorted(exc.valid_methods or ())
        if isinstance(exc, HTTPException):
            exc = translate_http_exception(exc, request.method, request.path, server.max_body_bytes)
        status, headers, body = render(exc, request_id, allow=allow)
        return Response(body, status=status, headers=Headers(headers))

    app.register_error_handler(Exception, handle_error)

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    return app


def build_inference_app(daemon: Daemon) -> RequestMiddleware:
    """The OpenAI-compatible app served on the inference listener."""
    app = _new_app("trinfer-inference", daemon)

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        return await chat_views.chat_completions(daemon.router)

    @app.post("/v1/embeddings")
    async def embeddings() -> Response:
        return await embedding_views.embeddings(daemon.router)

    @app.websocket(ws_views.WS_PATH)
    async def ws() -> Response | None:
        return await ws_views.websocket_route(daemon)

    @app.get("/")
    async def playground_page() -> Response:
        return playground_response("index.html")

    @app.get(f"{playground.ASSET_PREFIX}<name>")
    async def playground_asset(name: str) -> Response:
        return playground_response(name)

    @app.get("/v1/models")
    async def models() -> Response:
        return json_response(
            model_list([model_object(m, daemon.created, OWNED_BY) for m in daemon.router.model_ids()])
        )

    @app.get("/v1/models/<path:model_id>")
    async def model(model_id: str) -> Response:
        daemon.router.owner(model_id)  # ModelNotFound (404) for an unknown id
        return json_response(model_object(model_id, daemon.created, OWNED_BY))

    return RequestMiddleware(
        app,
        api_keys=daemon.api_keys,
        max_body_bytes=daemon.config.server.max_body_bytes,
        inflight=daemon.inflight,
        draining=daemon.draining,
    )


def build_admin_app(daemon: Daemon) -> RequestMiddleware:
    """The operator app served on the admin listener (bound first, before any backend boots)."""
    app = _new_app("trinfer-admin", daemon)

    @app.get("/ready")
    async def ready() -> Response:
        if daemon.is_ready():
            return json_response({"status": "ready"})
        if daemon.draining():
            raise ShuttingDown("The server is shutting down")
        raise NotReady(f"The server is not ready yet (state: {daemon.state.value})", code="not_ready")

    @app.get("/admin/status")
    async def status() -> Response:
        return json_response(daemon.status())

    return RequestMiddleware(
        app,
        api_keys=daemon.api_keys,
        max_body_bytes=daemon.config.server.max_body_bytes,
    )
