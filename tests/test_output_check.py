"""Outputs checked before paying (runner.outputcheck): a csv column template that names what
no answer or row has fails `validate`, `plan` and `apply` with one line naming the file, the
line and the column, and no job is created; one that names what every answer of the
provider's shape has passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROWS_MANIFEST, write_manifest
from providers_matrix import FLAVOURS, PROVIDERS, Flavour, serve

from runner.cli import main

# ROWS_MANIFEST with its rows in a CSV file, whose header names the columns
MANIFEST = (ROWS_MANIFEST.replace("rows: data/rows.jsonl", "rows: data/reviews.csv")
            .replace('answer: "{{ text }}"', "label: COLUMN"))

# What every answer of each provider's shape has, and a near miss of it.
USAGE = {"gemini": "usage.totalTokenCount", "openai": "usage.total_tokens",
         "anthropic": "usage.output_tokens"}


def project(tmp_path: Path, flavour: Flavour, column: str) -> Path:
    d = tmp_path / "proj"
    write_manifest(d, flavour.adapt(MANIFEST.replace("COLUMN", f'"{column}"')))
    (d / "data").mkdir()
    (d / "data/reviews.csv").write_text("n,customer,body\n1,Ann,Great\n2,Bob,Poor\n")
    return d


def one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@PROVIDERS
@pytest.mark.parametrize("column, says", [
    ("{{ txt }}", "'txt' is undefined"),
    ("{{ row.custmer }}", "has no attribute 'custmer'"),
    ("{{ usage.totl }}", "has no attribute 'totl'"),
])
def test_a_typo_in_a_column_fails_validate_plan_and_apply_before_anything_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flavour: Flavour, column: str, says: str) -> None:
    d = project(tmp_path, flavour, column)
    line = next(n for n, text in enumerate((d / "m.yaml").read_text().splitlines(), 1)
                if "label:" in text)
    for command in (["validate", str(d)], ["plan", str(d), "--emulator"],
                    ["apply", str(d), "--emulator"]):
        assert main(command) == 1, command
        error = one_error(capsys.readouterr().err)
        assert error.startswith(f"error: {d / 'm.yaml'}:{line}: "), error
        assert "spec.outputs[1].columns.label" in error and says in error
        assert f"a sample {flavour.name} answer" in error
    assert not (d / "batches.lock").exists()
    with serve(flavour, tmp_path / "emu", monkeypatch, 0.1) as emu:
        assert main(["apply", str(d)]) == 1
        assert flavour.jobs(emu) == []          # over real HTTP: nothing was created
    assert "columns.label" in capsys.readouterr().err


@PROVIDERS
def test_columns_that_every_answer_and_row_can_fill_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flavour: Flavour) -> None:
    column = (f"{{{{ row.customer }}}} {{{{ text | trim }}}} {{{{ {USAGE[flavour.name]} }}}} "
              "{{ finish_reason }} {{ key }} {{ index }} {{ request_hash }} {{ response }}")
    d = project(tmp_path, flavour, column)
    assert main(["validate", str(d)]) == 0, capsys.readouterr().err


def test_a_usage_field_of_another_provider_fails(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    gemini, openai = FLAVOURS[0], FLAVOURS[1]
    d = project(tmp_path, openai, "{{ " + USAGE[gemini.name] + " }}")
    assert main(["validate", str(d)]) == 1
    assert "has no attribute 'totalTokenCount'" in one_error(capsys.readouterr().err)


@pytest.mark.parametrize("endpoint, column, ok", [
    ("/v1/responses", "{{ usage.output_tokens }} {{ text }}", True),
    ("/v1/responses", "{{ usage.completion_tokens }}", False),
    ("/v1/embeddings", "{{ json[0] }} {{ usage.prompt_tokens }}", True),
    ("/v1/embeddings", "{{ response.choices }}", False),
])
def test_each_openai_endpoint_is_checked_against_its_own_answer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], endpoint: str, column: str,
        ok: bool) -> None:
    text = (MANIFEST.replace("provider: gemini", "provider: openai")
            .replace("model: gemini-2.5-flash", f"model: gpt-4o-mini\n  endpoint: {endpoint}")
            .replace("    contents: [{role: user, parts: [{text: \"Item {{ row.n }}: "
                     "{{ row.body }}\"}]}]\n", '    input: "{{ row.body }}"\n')
            .replace("COLUMN", f'"{column}"'))
    d = project(tmp_path, FLAVOURS[0], column)
    write_manifest(d, text)
    assert main(["validate", str(d)]) == (0 if ok else 1), capsys.readouterr().err


def test_inline_items_are_the_rows_checked(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "proj"
    write_manifest(d, MANIFEST.replace("rows: data/reviews.csv",
                                       "items: [{n: 1, body: a}, {n: 2, body: b}]")
                   .replace("COLUMN", '"{{ row.bodies }}"'))
    assert main(["validate", str(d)]) == 1
    error = one_error(capsys.readouterr().err)
    assert "spec.items item 1" in error and "has no attribute 'bodies'" in error


def test_a_jsonl_output_alone_needs_no_check(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    d = project(tmp_path, FLAVOURS[0], "{{ txt }}")
    write_manifest(d, MANIFEST[:MANIFEST.index("    - path: out/big.csv")])
    assert main(["validate", str(d)]) == 0, capsys.readouterr().err


def test_json_of_an_undeclared_answer_may_be_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing says the answer's shape: whatever a column does with `json` passes; its other
    names are still checked."""
    column = ("{{ json.score > 0.5 }} {{ json.tags | first }} {{ json.n | round + 1 }} "
              "{{ json['items'] | length }} {{ json.a | tojson }} {{ json.b | upper }}")
    d = project(tmp_path, FLAVOURS[0], column)
    assert main(["validate", str(d)]) == 0, capsys.readouterr().err
    d = project(tmp_path / "typo", FLAVOURS[0], column + " {{ jsn.a }}")
    assert main(["validate", str(d)]) == 1
    assert "'jsn' is undefined" in one_error(capsys.readouterr().err)
