"""The two quart-trio apps: the inference app (``/v1/...``, ``/health``) and the admin app (``/health``,
``/ready``, ``/admin/status``), each wrapped in `RequestMiddleware`, with the one error handler.

The route table of the inference app is here, and beside it `ERROR_DIALECTS`, the error body of each route
prefix that does not speak OpenAI's. Each route is a thin view given the `Services` value, never the Daemon.
The ``POST`` routes that run generations (`generation_views`) are served in front of quart, straight off ASGI
(`proxy.direct_routes`); quart serves the rest: ``/health``, models, the playground, the WebSockets, 404s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, cast

from quart import Response, has_request_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.routing import RequestRedirect

from adapters.errors import NotReady
from compat.anthropic.errors import render_anthropic_error
from compat.errors import RouteNotFound, ShuttingDown
from compat.openai.models import model_list, model_object

from . import chat as chat_views
from . import completions as completion_views
from . import embeddings as embedding_views
from . import messages as messages_views
from . import playground
from . import responses as response_views
from . import responses_ws as responses_ws_views
from . import ws as ws_views
from .asgi import RequestMiddleware
from .cors import CorsPolicy
from .direct_routes import METHOD, DirectRoutes, View
from .errors import ErrorBody, ErrorRenderers, translate_http_exception
from .inflight import SCOPE_KEY, RequestInfo
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .request_io import json_response
from .services import Services

OWNED_BY = "trinfer"

#: Route prefix -> the error body of its dialect, for the routes that do not answer with OpenAI's.
ERROR_DIALECTS: Mapping[str, ErrorBody] = {messages_views.PREFIX: render_anthropic_error}
#: Route prefixes whose clients may send the key as ``x-api-key`` (Anthropic's header).
X_API_KEY_PREFIXES: tuple[str, ...] = (messages_views.PREFIX,)


def error_renderers() -> ErrorRenderers:
    """The error renderer of every path: OpenAI's body, except under the prefixes of `ERROR_DIALECTS`."""
    return ErrorRenderers(by_prefix=ERROR_DIALECTS)


def route_templates(app: QuartTrio, direct: frozenset[str] = frozenset()) -> Callable[[str, str], str]:
    """(method, path) -> the template of the route that serves it (``/v1/models/{model_id}``; a direct route's
    path), else ``other``: the bounded ``route`` label of the request metrics."""
    urls = app.url_map.bind("trinfer")

    def route_of(method: str, path: str) -> str:
        if path in direct:
            return path if method == METHOD else "other"
        try:
            rule, _ = urls.match(path, method, return_rule=True)
        except (HTTPException, RequestRedirect):
            return "other"
        return _PLACEHOLDER.sub(r"{\1}", rule.rule)

    return route_of


_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def playground_response(name: str) -> Response:
    """A file of the playground page, with its security headers; 404 for any other name."""
    found = playground.asset(name)
    if found is None:
        raise RouteNotFound(f"Invalid URL (GET {playground.ASSET_PREFIX}{name})")
    return Response(found.body, status=200, content_type=found.content_type, headers=found.headers())


def _new_app(name: str, services: Services, errors: ErrorRenderers) -> QuartTrio:
    server = services.server
    app = QuartTrio(name)
    # Deliberate limits: no whole-response timeout (streams last as long as the generation; each write is
    # bounded by write_timeout_s instead); bodies are capped and must arrive within write_timeout_s.
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = server.max_body_bytes
    app.config["BODY_TIMEOUT"] = server.write_timeout_s
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    async def handle_error(exc: Exception) -> Response:
        """The one error handler: every error of either app leaves through `ErrorRenderers.render`.

        It also answers WebSocket upgrades that fail before the route (an unknown path: 404), as HTTP.
        """
        current = request if has_request_context() else websocket
        info: RequestInfo | None = cast(Mapping[str, Any], current.scope).get(SCOPE_KEY)
        request_id = info.request_id if info is not None else "unknown"
        allow: list[str] | None = None
        if isinstance(exc, WerkzeugMethodNotAllowed):
            allow = sorted(exc.valid_methods or ())
        if isinstance(exc, HTTPException):
            exc = translate_http_exception(exc, current.method, current.path, server.max_body_bytes)
        error = errors.render(exc, request_id, current.path, allow=allow)
        return Response(error.body, status=error.status, headers=Headers(error.headers))

    app.register_error_handler(Exception, handle_error)

    @app.get("/health")
    async def health() -> Response:
        return json_response({"status": "ok"})

    return app


def build_inference_app(services: Services) -> RequestMiddleware:
    """The OpenAI-compatible app served on the inference listener."""
    errors = error_renderers()
    app = _new_app("trinfer-inference", services, errors)
    router = services.router

    @app.websocket(responses_ws_views.PATH)
    async def responses_ws() -> Response | None:
        return await responses_ws_views.responses_socket_route(services, errors)

    @app.route("/v1/responses/<response_id>", methods=["GET", "DELETE"])
    @app.route("/v1/responses/<response_id>/<any(input_items, cancel):action>", methods=["GET", "POST"])
    async def stored_response(response_id: str, action: str | None = None) -> Response:
        raise response_views.stored_response(response_id)

    @app.websocket(ws_views.WS_PATH)
    async def ws() -> Response | None:
        return await ws_views.websocket_route(services, errors)

    @app.get("/")
    async def playground_page() -> Response:
        return playground_response("index.html")

    @app.get(f"{playground.ASSET_PREFIX}<name>")
    async def playground_asset(name: str) -> Response:
        return playground_response(name)

    @app.get("/v1/models")
    async def models() -> Response:
        return json_response(
            model_list([model_object(m, services.started_at, OWNED_BY) for m in router.model_ids()])
        )

    @app.get("/v1/models/<path:model_id>")
    async def model(model_id: str) -> Response:
        router.owner(model_id)  # ModelNotFound (404) for an unknown id
        return json_response(model_object(model_id, services.started_at, OWNED_BY))

    direct = DirectRoutes(
        app,
        generation_views(services),
        errors=errors,
        max_body_bytes=services.server.max_body_bytes,
        body_timeout_s=services.server.write_timeout_s,
    )
    return RequestMiddleware(
        direct,
        api_keys=services.api_keys,
        max_body_bytes=services.server.max_body_bytes,
        inflight=services.inflight,
        draining=services.lifecycle.draining,
        errors=errors,
        x_api_key_prefixes=X_API_KEY_PREFIXES,
        metrics=services.metrics,
        route_of=route_templates(app, direct.paths),
        cors=CorsPolicy.from_config(services.server.cors_allow_origins),
    )


def generation_views(services: Services) -> dict[str, View]:
    """The ``POST`` routes served off ASGI (`proxy.direct_routes`): path -> view."""
    return {
        "/v1/chat/completions": partial(chat_views.chat_completions, services),
        "/v1/responses": partial(response_views.create_response, services),
        "/v1/completions": partial(completion_views.create_completion, services),
        messages_views.PREFIX: partial(messages_views.messages, services),
        f"{messages_views.PREFIX}/count_tokens": partial(messages_views.count_tokens, services),
        "/v1/embeddings": partial(embedding_views.embeddings, services),
    }


def build_admin_app(services: Services, status: Callable[[], dict[str, Any]]) -> RequestMiddleware:
    """The operator app served on the admin listener (bound first, before any backend boots); ``status``
    gives the body of ``/admin/status``."""
    errors = error_renderers()
    app = _new_app("trinfer-admin", services, errors)
    lifecycle = services.lifecycle

    @app.get("/ready")
    async def ready() -> Response:
        if lifecycle.is_ready():
            return json_response({"status": "ready"})
        if lifecycle.draining():
            raise ShuttingDown("The server is shutting down")
        raise NotReady(f"The server is not ready yet (state: {lifecycle.state.value})", code="not_ready")

    @app.get("/admin/status")
    async def admin_status() -> Response:
        return json_response(status())

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(services.metrics.exposition(), status=200, content_type=METRICS_CONTENT_TYPE)

    return RequestMiddleware(
        app,
        api_keys=services.api_keys,
        max_body_bytes=services.server.max_body_bytes,
        errors=errors,
        cors=CorsPolicy.from_config(services.server.cors_allow_origins),
    )
