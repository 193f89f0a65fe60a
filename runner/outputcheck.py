"""Outputs checked before paying: every csv column rendered once, offline, before a batch is
sent, so that a typo in a column template (`{{ txt }}`, `{{ row.custmer }}`) fails `validate`
and `plan` rather than the apply that waited a day for the answers.

A column is rendered for the first row, as the rows file has it (so `row.custmer` fails
where the rows have no such column), against a result of the provider's own shape (the
dialect's `sample_result`) carrying the fields every real answer has. Its `json` is the least
document the declared response schema allows (runner.answers.stand_in): a property the schema
does not require may be missing from an answer, so a column that reads one must give it a
default. Where the request declares no schema, `json` may hold anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .answers import Anything, stand_in, template_context, validator
from .errors import TemplateError
from .hashing import request_hash
from .manifest import Manifest
from .providers.dialect import Answer, JsonAnswer
from .render import Renderer, Request

SAMPLE_TEXT = "A sample answer."


def first_request(renderer: Renderer) -> Request:
    """The request of the manifest's first row."""
    rows = renderer.manifest.iter_rows()
    try:
        return renderer.render_row(next(rows))
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def declared_answer(renderer: Renderer, request: Request | None = None) -> JsonAnswer | None:
    """What the requests declare of their answers, as the first one (`request`) says it."""
    m = renderer.manifest
    if renderer.dialect.json_answer(renderer.dialect.body(m.request, m.model),
                                    m.endpoint) is None:
        return None     # spares rendering a row: a declaration is never all template
    request = request or first_request(renderer)
    return renderer.dialect.json_answer(request.request, m.endpoint)


def check_outputs(manifest: Manifest, renderer: Renderer | None = None) -> None:
    """Raises TemplateError for a csv column that fails for the first row against a sample
    answer, and ManifestError for a declared response schema that is not one."""
    renderer = renderer or Renderer(manifest)
    declared = declared_answer(renderer)
    if declared is not None and declared.schema is not None:
        validator(manifest, declared)
    columns = [column for table in renderer.columns for column in table]
    if not columns:
        return
    request = first_request(renderer)
    dialect, model = renderer.dialect, manifest.model

    def render_all(value: object, text: str) -> None:
        result = dialect.sample_result(request.key, text, model, manifest.endpoint)
        answer = dialect.read_result(result)
        assert isinstance(answer, Answer), f"{dialect.name}'s sample result fails: {answer}"
        rhash = request_hash(manifest.provider, model, request.request_bytes)
        ctx = template_context(manifest, request.key, request.index, request.row.data,
                               answer, rhash, value)
        for column in columns:
            renderer.render_column(column, ctx, request.row)

    try:
        if declared is None or declared.schema is None:
            render_all(Anything(), SAMPLE_TEXT if declared is None else "{}")
        else:
            _against_schema(render_all, declared.schema)
    except TemplateError as e:
        raise TemplateError(f"{e.args[0]} (checked before sending, against a sample "
                            f"{dialect.name} answer)", path=e.path, where=e.where) from None


def _against_schema(render_all: Callable[[object, str], None],
                    schema: Mapping[str, Any]) -> None:
    """Renders against the least answer the schema allows; when only a fuller one passes,
    says that the property read may be missing."""
    least = stand_in(schema)
    try:
        render_all(least, _dumps(least))
    except TemplateError as e:
        full = stand_in(schema, full=True)
        try:
            render_all(full, _dumps(full))
        except TemplateError:
            raise e from None
        raise TemplateError(f"{e.args[0]}: the response schema does not require this "
                            "property, so an answer may lack it; list it under `required`, "
                            "or give it a default (`{{ json.x | default('') }}`)",
                            path=e.path, where=e.where) from None

def _dumps(value: object) -> str:
    return orjson.dumps(value, default=lambda _: None).decode()     # Anything: null
