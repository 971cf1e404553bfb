"""hypercorn's WebSocket stream, failing a connection the way RFC 6455 asks: with a close frame.

When wsproto finds a protocol violation in what the client sent (a text frame that is not valid UTF-8, a
bad control frame), it reports a close that the *server* must start. hypercorn's stream only answered closes
the client started, so the socket was dropped without a close frame and the client never learnt why. Here
the server sends the close, with wsproto's code and reason (1007 for invalid UTF-8, 1002 otherwise), after
an ``error`` frame (``invalid_json``, as for any frame that cannot be parsed) when the payload was not UTF-8:
RFC 6455 section 8.1 requires failing the connection then, so the socket cannot stay open as it does for
other malformed frames.
"""

from __future__ import annotations

from hypercorn.protocol.events import Body, Data, Event, StreamClosed
from hypercorn.protocol.ws_stream import ASGIWebsocketState, FrameTooLargeError, WSStream
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

from compat.errors import RequestValidationError
from compat.openai.ws_protocol import error_frame

NOT_UTF8 = error_frame(
    None,
    RequestValidationError(
        "We could not parse the JSON in your frame: it is not valid UTF-8. The socket is closed (RFC 6455).",
        code="invalid_json",
    ),
)


class FailingWSStream(WSStream):
    """`WSStream` whose connection failures (see the module docstring) end with an error frame and a close,
    and which drops what a client sends after its upgrade was refused.

    hypercorn answers data that arrives before the upgrade is accepted with a 400; once the app has refused
    the upgrade with its own response (401 without a key, 404, 400), that second response is illegal and h11
    raised ``LocalProtocolError`` out of the connection's reader (which ended every listener, before
    `proxy.listener` isolated connections). The refusal already tells the client; the connection closes after it.
    """

    async def handle(self, event: Event) -> None:
        refused = not self.closed and self.state in {ASGIWebsocketState.RESPONSE, ASGIWebsocketState.HTTPCLOSED}
        if isinstance(event, Body | Data) and refused:
            return
        await super().handle(event)

    async def _handle_events(self) -> None:
        # hypercorn's loop, plus the branch for a close that wsproto raised while the connection was open.
        for event in self.connection.events():
            if isinstance(event, CloseConnection) and self.connection.state is ConnectionState.OPEN:
                reason = event.reason
                if event.code == CloseReason.INVALID_FRAME_PAYLOAD_DATA:
                    await self._send_wsproto_event(TextMessage(data=NOT_UTF8))
                    reason = "invalid UTF-8 in a text frame"
                await self._send_wsproto_event(CloseConnection(code=event.code, reason=reason))
                await self.send(StreamClosed(stream_id=self.stream_id))
                break
            if isinstance(event, Message):
                try:
                    self.buffer.extend(event)
                except FrameTooLargeError:
                    await self._send_wsproto_event(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                    break
                if event.message_finished:
                    assert self.app_put is not None
                    await self.app_put(self.buffer.to_message())
                    self.buffer.clear()
            elif isinstance(event, Ping):
                await self._send_wsproto_event(event.response())
            elif isinstance(event, CloseConnection):
                if self.connection.state == ConnectionState.REMOTE_CLOSING:
                    await self._send_wsproto_event(event.response())
                await self.send(StreamClosed(stream_id=self.stream_id))
