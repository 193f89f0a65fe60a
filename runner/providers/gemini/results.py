"""Reading one line of a Gemini results file: `{"key", "response"}` or `{"key", "error"}`.

A response is a GenerateContentResponse. Its answer is the text of the first candidate's
parts, thought parts left out; a response without candidates is a blocked prompt
(`promptFeedback.blockReason`), which fails its request. Every field is checked for its type
first, so that a result of the wrong shape fails its own request, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...usage import Usage
from ..dialect import Answer, Malformed


def response_text(response: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(text, finish_reason) of the first candidate; thought parts are not part of the answer.
    Raises Malformed, naming the field, for a response not shaped as the API says."""
    candidates = response.get("candidates")
    if candidates is None or candidates == []:
        return None, None
    if type(candidates) is not list:
        raise Malformed("candidates", candidates, "an array")
    first = candidates[0]
    if type(first) is not dict:
        raise Malformed("candidates[0]", first, "an object")
    content = first.get("content")
    if content is not None and type(content) is not dict:
        raise Malformed("candidates[0].content", content, "an object")
    parts = [] if content is None else content.get("parts")
    if parts is not None and type(parts) is not list:
        raise Malformed("candidates[0].content.parts", parts, "an array")
    texts = []
    for i, part in enumerate(parts or ()):
        if type(part) is not dict:
            raise Malformed(f"candidates[0].content.parts[{i}]", part, "an object")
        text, thought = part.get("text"), part.get("thought")
        if not (text is None or type(text) is str):
            raise Malformed(f"candidates[0].content.parts[{i}].text", text, "a string")
        if not (thought is None or type(thought) is bool):
            raise Malformed(f"candidates[0].content.parts[{i}].thought", thought, "a boolean")
        if text is not None and not thought:
            texts.append(text)
    finish = first.get("finishReason")
    if not (finish is None or type(finish) is str):
        raise Malformed("candidates[0].finishReason", finish, "a string")
    return "".join(texts), finish


def read_result(result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
    """A result line's Answer when it is a success; otherwise the error to record for its
    request: the provider's, no result at all, no candidates (a blocked prompt), or a result
    not shaped as the API says, naming the field."""
    if result is None or "error" in result:
        return _error_of(result)
    try:
        response = result.get("response")
        if not (response is None or type(response) is dict):
            raise Malformed("response", response, "an object")
        text, finish = response_text(response) if response else (None, None)
        if text is None:
            return _error_of(result)
        assert response is not None
        usage = response.get("usageMetadata")
        if not (usage is None or type(usage) is dict):
            raise Malformed("usageMetadata", usage, "an object")
        raw = usage or {}
        return Answer(text, finish, usage_of(raw), raw, response)
    except ValueError as e:     # Malformed, or a count in usageMetadata that is not one
        return {"message": f"the provider's result is malformed: {e}"}


def usage_of(metadata: Mapping[str, Any]) -> Usage:
    """The usage of one response from its usageMetadata (camelCase or snake_case); raises
    ValueError, naming the field, for a count that is not one. Tool-use prompts count as
    input, thinking as output: both are billed so."""
    prompt = (_count(metadata, "promptTokenCount", "prompt_token_count")
              + _count(metadata, "toolUsePromptTokenCount", "tool_use_prompt_token_count"))
    output = (_count(metadata, "candidatesTokenCount", "candidates_token_count")
              + _count(metadata, "thoughtsTokenCount", "thoughts_token_count"))
    return Usage.of_request(prompt, output)


def _count(metadata: Mapping[str, Any], camel: str, snake: str) -> int:
    """A token count from usageMetadata, under its JSON name or its snake_case twin. Both are
    spelled out: deriving one from the other cost more than the rest of a response's join."""
    value = metadata.get(camel)
    if type(value) is int and value >= 0:       # the usual case, on the join's hot path
        return value
    value = metadata.get(snake) if value is None else value
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if type(value) is not int or value < 0:     # a provider's answer of the wrong shape
        raise ValueError(f"usageMetadata.{camel} is not a count of tokens")
    return value


def _error_of(result: Mapping[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"message": "the provider returned no result for this key"}
    if "error" in result:
        err = result["error"]
        return err if isinstance(err, dict) else {"message": str(err)}
    response = result.get("response") or {}
    feedback = response.get("promptFeedback")
    if not (feedback is None or type(feedback) is dict):
        raise Malformed("promptFeedback", feedback, "an object")
    block = (feedback or {}).get("blockReason")
    if not (block is None or type(block) is str):
        raise Malformed("promptFeedback.blockReason", block, "a string")
    return {"message": f"response has no candidates (blockReason: {block or 'none given'})",
            "response": response}
