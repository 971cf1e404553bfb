"""``POST /v1/completions`` (legacy text completions): parse, run each prompt through `proxy.pipeline`, answer
as one ``text_completion`` object or as ``text_completion`` SSE chunks and ``[DONE]``.

Several prompts are several engine requests, run one after another (each one's choice follows the previous
one's, in prompt order); each admits, streams and frees its slot like any generation. A failure before the
first prompt's first event is a status; a later one (streaming) is the in-band error event and no ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.types import Event, ResolvedV2
from compat.openai.completions import CompletionEncoder, CompletionSSE, new_completion_id, parse_completion_request

from . import pipeline
from .inflight import RequestInfo
from .request_io import Exchange, Reply, json_reply
from .routing import Router
from .services import Services
from .sse import sse_response


async def create_completion(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    completion = await exchange.read_parsed(parse_completion_request)
    info.model = completion.model
    first, *rest = completion.requests
    generation = await pipeline.generate(services.router, first, info, stream=completion.stream)
    encoder = CompletionEncoder(completion, new_completion_id(), int(services.clock()))
    if completion.stream:
        prompts = PromptsInTurn(generation, rest, services.router, info)
        return sse_response(prompts, CompletionSSE(encoder), info)
    for event in await generation.collect():
        encoder.encode(event)
    for req in rest:
        for event in await (await pipeline.generate(services.router, req, info, stream=False)).collect():
            encoder.encode(event)
    return json_reply(encoder.result())


class PromptsInTurn:
    """The generations of a request's prompts, one after another, as one stream of event batches.

    Starts with the first prompt's generation (already under way); when one ends, the next prompt's starts
    (`pipeline.generate`, which raises what ended it before its first event: in-band, since streaming began).
    `cancel` stops the generation in progress.
    """

    def __init__(
        self, first: pipeline.Generation, rest: Sequence[ResolvedV2], router: Router, info: RequestInfo
    ) -> None:
        self._current = first
        self._rest = list(rest)
        self._router = router
        self._info = info

    def __aiter__(self) -> PromptsInTurn:
        return self

    async def __anext__(self) -> list[Event]:
        while True:
            batch = await self._current.next_batch()
            if batch:
                return batch
            if not self._rest:
                raise StopAsyncIteration
            self._current = await pipeline.generate(self._router, self._rest.pop(0), self._info, stream=True)

    def cancel(self) -> None:
        self._current.cancel()
