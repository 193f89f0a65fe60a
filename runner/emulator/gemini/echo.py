"""The emulated model's answers in Gemini's shape (the rule itself: runner.emulator.model).

- `prompt` is the `text` of every part of every item of `contents`, in order, joined with
  "\\n" (parts without text, such as inline data, and `systemInstruction` are ignored);
- the response is a GenerateContentResponse with one candidate whose only part is the text
  `"echo: " + prompt`, role "model", finishReason "STOP", index 0; a request whose
  `generationConfig` asks for `responseMimeType: application/json` gets instead a document
  that fits its `responseJsonSchema` or `responseSchema` (runner.emulator.documents);
- `usageMetadata`: promptTokenCount = ceil(len(prompt) / 4), at least 1;
  candidatesTokenCount = ceil(len(text) / 4); totalTokenCount = their sum;
- `modelVersion` is the batch's model id (e.g. "gemini-2.5-flash"); `responseId` is a hash of
  the request's canonical JSON.

A request that fails (a prompt containing `EMULATOR_FAIL`, code 3, or one the batch's
`request_error_rate` picks, code 13) gets a google.rpc.Status instead. The identity that picks
it is the request's key (`key` of a file line, `metadata.key` inline), or its canonical JSON
when it has no key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.emulator import documents, model
from runner.emulator.gemini.protojson import pick, rpc_status
from runner.emulator.wire import JSON


def prompt_of(request: Mapping[str, Any]) -> str:
    texts: list[str] = []
    contents = request.get("contents")
    for content in contents if isinstance(contents, list) else []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "\n".join(texts)


def answer(request: Mapping[str, Any], prompt: str, model_id: str,
           canonical_request: bytes | None = None) -> JSON:
    """The response to `request`, whose `prompt_of` the caller has already computed (and its
    canonical JSON, when at hand)."""
    text = reply(request, prompt)
    prompt_tokens = model.prompt_tokens_of(prompt)
    answer_tokens = model.answer_tokens_of(text)
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens,
        },
        "modelVersion": model_id,
        "responseId": model.response_id(request) if canonical_request is None
        else model.response_id_of(canonical_request),
    }


def reply(request: Mapping[str, Any], prompt: str) -> str:
    """The answer's text: an echo, or the JSON document the request's config asks for."""
    config = pick(request, "generationConfig")
    if not isinstance(config, dict) or pick(config, "responseMimeType") != "application/json":
        return model.reply_text(prompt)
    schema = pick(config, "responseJsonSchema")
    return documents.text_of(pick(config, "responseSchema") if schema is None else schema,
                             prompt)


def error_for(policy: model.FailurePolicy, prompt: str, identity: str) -> JSON | None:
    """The google.rpc.Status of a request that `policy` fails, else None."""
    failure = policy.failure(prompt, identity)
    return None if failure is None else rpc_status(failure.status, failure.message)
