"""A provider that lives only in the tests: the proof that adding a provider means one package
and one registry line (`monkeypatch.setitem(registry.PROVIDERS, "toy", "toy_provider")`).

Its wire differs from Gemini's on purpose, in every place the core must not assume Gemini:
the request is `{"prompt", "max_tokens"}` with the model inside it, an input line is
`{"id": KEY, "params": REQUEST}`, and a result line is `{"id", "outcome": {"answer", "stop",
"tokens": {"in", "out"}}}` or `{"id", "failure"}`. The client keeps its jobs as JSON files in
the directory named by TOY_STATE (whatever base URL it is given), and a job succeeds the
second time it is fetched (get_job), so that apply has to poll for it. A prompt holding FAIL fails.
Its models are toy-1 and toy-2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from runner.limits import Limits
from runner.providers.base import JobState, OnProgress, Provider, RemoteJob
from runner.providers.dialect import Answer, Endpoint, Framing, JsonAnswer, Malformed
from runner.tokens import integer_setting, text_tokens
from runner.usage import Usage

SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "additionalProperties": False,
    "properties": {"prompt": {"type": "string"}, "max_tokens": {"type": "integer"}},
}


@dataclass(frozen=True)
class ToyDialect:
    name: str = "toy"
    limits: Limits = field(default_factory=lambda: Limits(
        inline_bytes=1000, file_bytes=1 << 20, requests=5, concurrent_jobs=3))
    endpoint: Endpoint = Endpoint("toy://", ("TOY_API_KEY",))
    expiry: str = "1 h"
    output_bound_setting: str = "max_tokens"
    model_hint: str = "give a toy model id such as toy-1"
    endpoints: tuple[str, ...] = ()
    tags_jobs: bool = True          # its display name
    maps_keys: bool = True          # a key is sent with a "toy-" prefix, to prove the mapping

    def framing(self, endpoint: str | None) -> Framing:
        return Framing(b'{"id":', b',"params":')

    def request_schema(self, endpoint: str | None) -> Mapping[str, Any]:
        return SCHEMA

    def wire_key(self, key: str) -> str:
        if len(key) > 20:
            raise ValueError("a toy key is at most 20 characters")
        return "toy-" + key

    def key_of_wire(self, wire: str) -> str:
        return wire.removeprefix("toy-")

    def model_id(self, model: str) -> str:
        return model

    def body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        return {**request, "model": model}

    def result_key(self, result: Mapping[str, Any]) -> object:
        return result.get("id")

    def read_result(self, result: Mapping[str, Any] | None) -> Answer | dict[str, Any]:
        if result is None:
            return {"message": "no result"}
        if "failure" in result:
            return {"message": str(result["failure"])}
        outcome = result.get("outcome")
        if type(outcome) is not dict or type(outcome.get("answer")) is not str:
            return {"message": "malformed"}
        tokens = outcome.get("tokens") or {}
        try:
            usage = self.usage(tokens)
        except ValueError as e:
            return {"message": str(e)}
        return Answer(outcome["answer"], outcome.get("stop"), usage, tokens, outcome)

    def usage(self, raw: Mapping[str, Any]) -> Usage:
        prompt, output = raw.get("in", 0), raw.get("out", 0)
        if type(prompt) is not int or type(output) is not int:
            raise Malformed("tokens", raw, "counts")
        return Usage.of_request(prompt, output)

    def json_answer(self, request: Mapping[str, Any], endpoint: str | None
                    ) -> JsonAnswer | None:
        return None         # the toy API answers text only

    def sample_result(self, key: str, text: str, model: str, endpoint: str | None
                      ) -> dict[str, Any]:
        return {"id": self.wire_key(key),
                "outcome": {"answer": text, "tokens": {"in": 1, "out": 1}}}

    def request_tokens(self, request: Mapping[str, Any], endpoint: str | None
                       ) -> tuple[int, int]:
        return text_tokens(str(request.get("prompt", ""))), 0

    def output_bound(self, request: Mapping[str, Any], endpoint: str | None) -> int | None:
        return integer_setting(request.get("max_tokens"))

    def connect(self, api_key: str, base_url: str | None, tuning: Mapping[str, int]
                ) -> Provider:
        return ToyClient(Path(os.environ["TOY_STATE"]))


DIALECT = ToyDialect()


class ToyClient:
    """Jobs and files as JSON in a directory: persistent across runs, as a real API is."""

    name = "toy"
    inline_limit = 1000

    def __init__(self, state: Path):
        self.state = state
        self.deadline: float | None = None
        (state / "jobs").mkdir(parents=True, exist_ok=True)
        (state / "files").mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        return self.state / "jobs" / name.replace("/", "_")

    def _load(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        return json.loads(path.read_text()) if path.exists() else None

    def _save(self, job: dict[str, Any]) -> None:
        self._path(job["name"]).write_text(json.dumps(job))

    def _job(self, job: dict[str, Any], look: bool = True) -> RemoteJob:
        if look and job["state"] in ("PENDING", "RUNNING"):
            job["looks"] += 1
            if job["looks"] >= 2:
                job["state"] = "SUCCEEDED"
            self._save(job)
        answers = [json.loads(line) for line in job["results"].splitlines()]
        failed = sum(1 for a in answers if "failure" in a)
        return RemoteJob(job["name"], job["display_name"], JobState(job["state"]),
                         model=job["model"], create_time=job["created"], total=len(answers),
                         succeeded=len(answers) - failed if job["state"] == "SUCCEEDED" else 0,
                         failed=failed if job["state"] == "SUCCEEDED" else 0,
                         results_file=job["name"] + "/results", input_file=job["input"])

    def list_jobs(self) -> Iterator[RemoteJob]:
        for path in sorted((self.state / "jobs").iterdir()):
            yield self._job(json.loads(path.read_text()), look=False)

    def get_job(self, name: str) -> RemoteJob | None:
        job = self._load(name)
        return None if job is None else self._job(job)

    def create_job(self, model: str, display_name: str, *, input_file: str | None = None,
                   inline_lines: Path | None = None, endpoint: str | None = None
                   ) -> RemoteJob:
        source = inline_lines if inline_lines is not None else \
            self.state / "files" / str(input_file)
        results = []
        for line in source.read_text().splitlines():
            request = json.loads(line)
            prompt = request["params"]["prompt"]
            assert request["params"]["model"] == model
            if "FAIL" in prompt:
                results.append({"id": request["id"], "failure": "the toy refuses"})
            else:
                results.append({"id": request["id"], "outcome": {
                    "answer": f"toy: {prompt}", "stop": "done",
                    "tokens": {"in": len(prompt), "out": 2}}})
        number = len(list((self.state / "jobs").iterdir())) + 1
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        job = {"name": f"toyjobs/{number}", "display_name": display_name, "model": model,
               "state": "PENDING", "looks": 0, "created": created,
               "input": input_file, "results": "".join(json.dumps(r) + "\n" for r in results)}
        self._save(job)
        return self._job(job, look=False)

    def cancel_job(self, name: str) -> None:
        job = self._load(name)
        if job is not None and job["state"] in ("PENDING", "RUNNING"):
            job["state"] = "CANCELLED"
            self._save(job)

    def count_tokens(self, model: str, request: Mapping[str, Any]) -> int:
        return len(str(request.get("prompt", "")))

    def list_models(self) -> Iterator[str]:
        yield from ("toy-1", "toy-2")

    def delete_job(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def find_file(self, display_name: str) -> str | None:
        return display_name if (self.state / "files" / display_name).exists() else None

    def upload_file(self, path: Path, display_name: str, *,
                    on_progress: OnProgress | None = None) -> str:
        (self.state / "files" / display_name).write_bytes(path.read_bytes())
        return display_name

    def download_results(self, job: RemoteJob, dest: Path, *,
                         on_progress: OnProgress | None = None) -> None:
        stored = self._load(job.name)
        assert stored is not None and stored["state"] == "SUCCEEDED"
        dest.write_text(stored["results"])

    def close(self) -> None:
        pass
