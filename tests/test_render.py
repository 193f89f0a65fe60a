"""Rendering, hashing and manifest loading: the pure core, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MINIMAL, write_manifest

from runner.desired import render_into
from runner.errors import DataError, ManifestError, TemplateError
from runner.hashing import canonical
from runner.manifest import Manifest, load_directory
from runner.render import Renderer


def manifests(tmp_path: Path, text: str) -> list[Manifest]:
    write_manifest(tmp_path, text)
    return load_directory(tmp_path)


def test_renders_rows_with_typed_values_and_vars(tmp_path: Path) -> None:
    text = MINIMAL.replace('request:\n', 'vars: {greeting: Hi}\n  request:\n    '
                           'generationConfig: {temperature: 0.5, candidateCount: 1}\n')
    text = text.replace('"{{ row.q }}"', '"{{ vars.greeting }} #{{ index }} {{ key }}: {{ row.q }}"')
    [m] = manifests(tmp_path, text)
    reqs = list(Renderer(m).requests())
    assert [r.key for r in reqs] == ["a", "b"]
    assert reqs[1].request == {
        "contents": [{"role": "user", "parts": [{"text": "Hi #1 b: What is 2+2?"}]}],
        "generationConfig": {"temperature": 0.5, "candidateCount": 1}}


def test_row_values_are_data_never_templates(tmp_path: Path) -> None:
    text = MINIMAL.replace('"What is 1+1?"', '"{{ 7*7 }} {% raw %}x{% endraw %}"')
    [m] = manifests(tmp_path, text)
    first = next(Renderer(m).requests())
    assert first.request["contents"][0]["parts"][0]["text"] == "{{ 7*7 }} {% raw %}x{% endraw %}"


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    text = MINIMAL.replace('"{{ row.q }}"', '"{{ \'\'.__class__.__mro__[1].__subclasses__() }}"')
    [m] = manifests(tmp_path, text)
    with pytest.raises(TemplateError, match="not allowed|undefined"):
        list(Renderer(m).requests())


def test_undefined_variable_names_the_row_and_field(tmp_path: Path) -> None:
    [m] = manifests(tmp_path, MINIMAL.replace("row.q", "row.question"))
    with pytest.raises(TemplateError) as e:
        list(Renderer(m).requests())
    msg = str(e.value)
    assert "m.yaml" in msg and "item 1" in msg and "spec.request.contents[0].parts[0].text" in msg


def test_duplicate_keys_are_rejected(tmp_path: Path) -> None:
    [m] = manifests(tmp_path, MINIMAL.replace('"{{ row.id }}"', '"same"'))
    with pytest.raises(DataError, match="duplicate key 'same' at spec.items item 2"):
        list(Renderer(m).requests())


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    [m] = manifests(tmp_path, MINIMAL)
    a, b = render_into(m), render_into(m)
    assert a.content_hash == b.content_hash and a.requests == 2
    [m2] = manifests(tmp_path, MINIMAL.replace("2+2", "2+3"))
    assert render_into(m2).content_hash != a.content_hash
    [m3] = manifests(tmp_path, MINIMAL.replace("gemini-2.5-flash", "gemini-2.5-pro"))
    assert render_into(m3).content_hash != a.content_hash


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_input_lines_are_the_gemini_jsonl_shape(tmp_path: Path) -> None:
    [m] = manifests(tmp_path, MINIMAL)
    renderer = Renderer(m)
    line = json.loads(renderer.line(next(renderer.requests())))
    assert set(line) == {"key", "request"} and line["key"] == "a"


@pytest.mark.parametrize("edit, message", [
    (("kind: Batch", "kind: Job"), "kind: 'Batch' was expected"),
    (("model: gemini-2.5-flash", "model: gemini-2.5-flash\n  temperature: 1"), "unknown key"),
    (("provider: gemini", "provider: openai-x"), "provider"),
    (("name: tiny", "name: Tiny_Name"), "metadata.name"),
    (("out/tiny.jsonl", "../escape.jsonl"), "leaves the project directory"),
    (("out/tiny.jsonl", "/tmp/abs.jsonl"), "must be a relative path"),
])
def test_schema_and_path_errors_name_file_and_line(tmp_path: Path, edit: tuple[str, str],
                                                   message: str) -> None:
    with pytest.raises(ManifestError) as e:
        manifests(tmp_path, MINIMAL.replace(*edit))
    assert message in str(e.value)
    assert str(e.value).startswith(str(tmp_path / "m.yaml") + ":")


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"m\.yaml:2: invalid YAML: mapping values"):
        manifests(tmp_path, "apiVersion: batch-runner/v1\nkind: Batch: x\n")


def test_two_manifests_may_not_share_name_or_output(tmp_path: Path) -> None:
    write_manifest(tmp_path, MINIMAL, "a.yaml")
    write_manifest(tmp_path, MINIMAL, "b.yaml")
    with pytest.raises(ManifestError, match="batch name 'tiny' is already used by a.yaml"):
        load_directory(tmp_path)
    write_manifest(tmp_path, MINIMAL.replace("name: tiny", "name: other"), "b.yaml")
    with pytest.raises(ManifestError, match="already written by batch 'tiny'"):
        load_directory(tmp_path)


def test_several_documents_per_file(tmp_path: Path) -> None:
    second = MINIMAL.replace("name: tiny", "name: tiny2").replace("out/tiny", "out/tiny2")
    write_manifest(tmp_path, MINIMAL + "---\n" + second)
    assert [m.name for m in load_directory(tmp_path)] == ["tiny", "tiny2"]


def test_paths_resolve_against_the_manifest_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(tmp_path / "proj", MINIMAL)
    monkeypatch.chdir(tmp_path)
    [m] = load_directory(Path("proj"))
    assert m.outputs[0].path == (tmp_path / "proj" / "out" / "tiny.jsonl")


def test_fast_paths_match_jinja_exactly(tmp_path: Path) -> None:
    """Substitution-only templates skip Jinja's context set-up; their bytes must equal what
    Jinja renders and what serialising the rendered dict gives."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from runner.hashing import canonical, request_hash

    text = MINIMAL.replace('"{{ row.q }}"', '"{{ row.q }} {{ row[\'odd key\'] }} {{ row.n }} '
                           '{{ row.t[1] }} {{ row.none }} {{ row.flag }} {{ row.d }} {{ index }}'
                           ' {{ row.keys }} x}{y"')
    text = text.replace('{id: a, q: "What is 1+1?"}',
                        '{id: a, q: "Q{x}", "odd key": é, n: 1.5, t: [x, y], none: null, '
                        'flag: true, d: {k: v}, keys: K}')
    text = text.replace('{id: b, q: "What is 2+2?"}',
                        '{id: b, q: "{{ 1 }}", "odd key": 2, n: 3, t: [z], none: 0, flag: no, '
                        'd: [], keys: K}')
    text = text.replace("contents: [", 'generationConfig: {temperature: 0.5, stopSequences: '
                        '["{{ row.id }}", end]}\n    contents: [')
    with pytest.raises(TemplateError, match="item 2"):   # row.t[1] is out of range in row 2
        [m] = manifests(tmp_path, text)
        list(Renderer(m).requests())
    [m] = manifests(tmp_path, text.replace("t: [z]", "t: [z, w]"))
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    source = m.request["contents"][0]["parts"][0]["text"]
    for row, req in zip(m.items or (), Renderer(m).requests()):
        expected = env.from_string(source).render(row=row, index=req.index, key=req.key,
                                                  vars={})
        assert req.request["contents"][0]["parts"][0]["text"] == expected
        assert req.request["generationConfig"]["stopSequences"] == [row["id"], "end"]
        assert req.request_bytes == canonical(req.request).encode()
        assert request_hash("gemini", m.model, req.request_bytes) == \
            "sha256:" + __import__("hashlib").sha256(
                canonical(["gemini", m.model, req.request]).encode()).hexdigest()


def test_duplicate_key_found_among_many(tmp_path: Path) -> None:
    rows = "\n".join(f'{{"id": "k{i}"}}' for i in range(5000)) + '\n{"id": "k1234"}\n'
    (tmp_path / "data").mkdir()
    (tmp_path / "data/r.jsonl").write_text(rows)
    text = MINIMAL.replace('items:\n    - {id: a, q: "What is 1+1?"}\n    - {id: b, q: "What is '
                           '2+2?"}', "rows: data/r.jsonl").replace("{{ row.q }}", "{{ row.id }}")
    [m] = manifests(tmp_path, text)
    with pytest.raises(DataError, match=r"duplicate key 'k1234' at data/r.jsonl line 5001 "
                                        r"\(first at data/r.jsonl line 1235\)"):
        list(Renderer(m).requests())
