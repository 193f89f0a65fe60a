"""Answers of a hostile or broken server, so that tests can prove a client survives them.

Switched on through Faults like the others (see `Faults` for each): list pages that never end,
answers that trickle in a byte at a time, error messages that quote the API key back, fields of
the wrong JSON type, an upload URL on another server. The API routes stay as they are: these
act on the request before a route sees it (`first_page`) and on the reply after (`distort`).
What is provider-neutral lives here; where a provider's answers keep their pages, error
messages, key and fields is its `Shapes` (Gemini's in runner.emulator.gemini.hostile).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.emulator.messages import Reply, Request
from runner.emulator.wire import dumps

if TYPE_CHECKING:
    from runner.emulator.faults import Faults

_REPEATED = "the-same-page-again"


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Where one provider's answers keep what the hostile faults reach into.

    `is_page` tells a list answer; `next_page` makes one announce a further page with the
    given token; `page_token` is the query parameter that asks for a page. `api_key` is the
    key a request carried; `messages` yields the error objects (with a "message") of an
    answer, the error answer's own and those inside the records it lists. `upload_url_header`
    names the header that says where an upload goes on, if the provider has one.
    `wrong_types` maps each name of Faults.wrong_types to the change that breaks that field
    in an answer; a name the provider has no field for leaves its answers as they are.
    """

    is_page: Callable[[Any], bool]
    next_page: Callable[[dict[str, Any], str], None]
    page_token: str
    api_key: Callable[[Request], str]
    messages: Callable[[Any], Iterator[dict[str, Any]]]
    wrong_types: Mapping[str, Callable[[Any], Any]]
    upload_url_header: str | None = None


def first_page(request: Request, faults: Faults, shapes: Shapes) -> Request:
    """With endless or repeating pages, a list is answered from its start whatever the token
    (which would not decode)."""
    if (faults.repeat_page_token or faults.endless_pages) and shapes.page_token in request.query:
        query = {k: v for k, v in request.query.items() if k != shapes.page_token}
        return dataclasses.replace(request, query=query)
    return request


def distort(request: Request, reply: Reply, faults: Faults, shapes: Shapes) -> Reply:
    """The reply as the faults that are on would have the server send it."""
    if faults.trickle:
        reply = dataclasses.replace(reply, trickle=faults.trickle)
    header = shapes.upload_url_header
    if faults.upload_url and header is not None and header in reply.headers:
        moved = urlsplit(reply.headers[header])
        url = f"{faults.upload_url.rstrip('/')}{moved.path}?{moved.query}"
        reply = dataclasses.replace(reply, headers={**reply.headers, header: url})
    paging = faults.repeat_page_token or faults.endless_pages
    if not (paging or faults.echo_key or faults.wrong_types) or reply.stream is not None \
            or not reply.body:
        return reply
    body = json.loads(reply.body)
    if faults.echo_key:
        key = shapes.api_key(request)
        for status in shapes.messages(body):
            status["message"] = f"{status.get('message', '')} [API key: {key}]"
    if paging and shapes.is_page(body):
        shapes.next_page(body, _REPEATED if faults.repeat_page_token else
                         f"page-{_page_number(request, shapes.page_token) + 1}")
    if faults.wrong_types and (change := shapes.wrong_types.get(faults.wrong_types)):
        body = change(body)
    return dataclasses.replace(reply, body=dumps(body))


def _page_number(request: Request, parameter: str) -> int:
    token = request.query.get(parameter, "")
    number = token.removeprefix("page-")
    return int(number) if number.isdigit() else 1


# -- pieces the providers' shapes share ------------------------------------------------------

Change = Callable[[dict[str, Any]], None]


def last_id_page(body: dict[str, Any], token: str) -> None:
    """`next_page` for lists continued after their last item's id (OpenAI, Anthropic)."""
    body["has_more"] = True
    body["last_id"] = token


def each(objects: Callable[[Any], Iterator[dict[str, Any]]], change: Change
         ) -> Callable[[Any], Any]:
    """A distortion that applies `change` to every object `objects` finds in an answer."""
    def apply(body: Any) -> Any:
        for found in objects(body):
            change(found)
        return body
    return apply


def array_page(is_page: Callable[[Any], bool]) -> Callable[[Any], Any]:
    """A distortion that answers a list page with its bare array of items."""
    return lambda body: body["data"] if is_page(body) else body


def string_items(is_page: Callable[[Any], bool]) -> Callable[[Any], Any]:
    """A distortion that lists a page's items as their ids, strings instead of objects."""
    def apply(body: Any) -> Any:
        if is_page(body):
            body["data"] = [item.get("id", "?") if isinstance(item, dict) else item
                            for item in body["data"]]
        return body
    return apply


def distort_lines(data: bytes, answer: Callable[[dict[str, Any]], dict[str, Any] | None],
                  change: Change) -> bytes:
    """JSONL result lines with `change` applied to the answer `answer` finds in each (None:
    a line left as it is): result files are out of the reach of `distort`."""
    lines = []
    for raw in data.splitlines():
        line = json.loads(raw)
        found = answer(line)
        if found is not None:
            change(found)
        lines.append(dumps(line) + b"\n")
    return b"".join(lines)
