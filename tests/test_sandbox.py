"""The template environment: bounded (no value, output or loop without end) and deterministic
(the same rows give the same requests in any process), and otherwise plain Jinja2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pytest
from conftest import MINIMAL, write_manifest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.errors import TemplateError
from runner.manifest import load_directory
from runner.render import Renderer
from runner.sandbox import BoundedSandbox

REPO = Path(__file__).resolve().parent.parent


def render_one(tmp_path: Path, template: str) -> str:
    write_manifest(tmp_path, MINIMAL.replace('"{{ row.q }}"', json.dumps(template)))
    [m] = load_directory(tmp_path)
    request = next(Renderer(m).requests()).request
    text: str = request["contents"][0]["parts"][0]["text"]
    return text


# Each makes far more than it is given: gigabytes, or hours of work, from a short template.
HOSTILE = {
    "{{ 'x' * 10**10 }}": "'\\*' would make more than",
    "{{ [0] * 10**9 }}": "'\\*' would make a list of more than",
    "{{ 2 ** 100000000 }}": "'\\*\\*' would make a number of more than",
    "{{ '%10000000000s' % 'x' }}": "'%' would make more than",
    "{{ '%.1000000000f' % 1.5 }}": "'%' would make more than",
    "{{ '{:>10000000000}'.format('x') }}": "str.format would make more than",
    "{{ '{:{w}}'.format('x', w=10**10) }}": "str.format would make more than",
    "{{ '{a:>10000000000}'.format_map({'a': 1}) }}": "str.format would make more than",
    "{{ 'x'.center(10**10) }}": "padding would make more than",
    "{{ 'x'.zfill(10**10) }}": "padding would make more than",
    "{{ 'x'|center(10**10) }}": "padding would make more than",
    "{{ ('\\t' * 1000000).expandtabs(1000) }}": "expandtabs\\(\\) would make more than",
    "{{ ('x' * 1000000).replace('', 'y' * 10) }}": "replace\\(\\) would make more than",
    "{{ 'ab'|replace('', 'x' * 9000000) }}": "replace\\(\\) would make more than",
    "{{ ('x' * 1000000).translate({120: 'y' * 1000}) }}": "translate\\(\\) would make more than",
    "{{ ','.join(['x' * 1000000] * 1000) }}": "join\\(\\) would make more than",
    "{{ (1).to_bytes(10**10, 'big') }}": "to_bytes\\(\\) would make more than",
    "{{ range(100000)|join(',' * 1000) }}": "the filter 'join' would make more than",
    "{{ (['x' * 1000000] * 1000)|join }}": "the filter 'join' would make more than",
    "{{ (['x' * 1000000] * 1000)|tojson }}": "the filter 'tojson' would make more than",
    "{{ (['x' * 1000000] * 1000)|string }}": "the filter 'string' would make more than",
    "{{ (['x' * 1000000] * 1000)|format }}": "the filter 'format' would make more than",
    "{{ '%s' % ((['x' * 1000000] * 1000),) }}": "'%' would make more than",
    "{{ ('a\\n' * 1000000)|indent(100) }}": "the filter 'indent' would make more than",
    "{{ ('x' * 1000000)|wordwrap(1, wrapstring='y' * 1000) }}":
        "the filter 'wordwrap' would make more than",
    "{{ [1]|batch(10**10, 'x')|list }}": "the filter 'batch' would make a list of more than",
    "{{ [1]|slice(10**9)|list }}": "the filter 'slice' would make a list of more than",
    "{{ ([[1] * 1000000] * 1000)|sum(start=[])|length }}":
        "the filter 'sum' would make a list of more than",
    "{{ [[('x' * 1000)] * 1000] * 1000 }}": "printing a value would make more than",
    "{% set ns = namespace(l=['x' * 1000000] * 1000) %}{{ ns }}":
        "printing a value would make more than",
    "{{ 'x' * 6000000 ~ 'x' * 6000000 }}": "the output would be more than",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}": "'\\+' would make more than",
    "{{ range(100000)|map('string')|map('center', 1000000)|list|length }}":
        "the template makes more than [\\d,]+ characters and items in all",
    "{% for i in range(100) %}{% set x = 'x' * 1000000 %}{% endfor %}":
        "the template makes more than [\\d,]+ characters and items in all",
    "{% set x %}{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}{% endset %}":
        "the template makes more than [\\d,]+ characters and items in all",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}":
        "more than [\\d,]+ steps",
    "{{ ([1] * 1000000)|map('string')|join }}": "more than [\\d,]+ steps",
}


@pytest.mark.parametrize("template", list(HOSTILE))
def test_a_template_that_would_make_too_much_fails_at_once(template: str, tmp_path: Path
                                                            ) -> None:
    start = time.monotonic()
    with pytest.raises(TemplateError, match="spec.items item 1: template over a limit in "
                       r"spec\.request\.contents\[0\]\.parts\[0\]\.text: " + HOSTILE[template]):
        render_one(tmp_path, template)
    assert time.monotonic() - start < 20     # at the limit, not after making it all


# Ordinary templates, one feature each, render exactly as with Jinja2's own sandbox.
ORDINARY = [
    "{% for x in items %}{{ loop.index }}:{{ x }}{{ loop.cycle(',', ';') }}{% else %}-{% endfor %}",
    "{% for n in tree recursive %}{{ n.name }}({{ loop(n.children) }}){% endfor %}",
    "{% macro m(a, b=2) %}[{{ a }}{{ b }}{{ caller() }}]{% endmacro %}"
    "{% call m(3) %}in{% endcall %}",
    "{% set x %}block {{ items|length }}{% endset %}{{ x|upper }}",
    "{{ items|map('upper')|join('-') }} {{ items|select('ne', 'b')|list }} {{ d|dictsort }}",
    "{{ people|groupby('city')|map(attribute='grouper')|join(',') }} "
    "{{ people|join(',', attribute='n') }} {{ people|sum(attribute='n') }}",
    "{{ '%s-%05d' % ('a', 42) }} {{ '{}/{:>4}'.format('x', 7) }} {{ '{a}'.format_map(d) }}",
    "{{ 'a' ~ 1 ~ none ~ [1, 2] }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ 2 ** 8 }} {{ 7 - 2 }}",
    "{% set ns = namespace(t=0) %}{% for i in range(5) %}{% set ns.t = ns.t + i %}{% endfor %}"
    "{{ ns.t }}",
    "{{ items|tojson }} {{ d|tojson(indent=2) }} {{ d|pprint }} {{ 'a b'|wordwrap(1) }}",
    "{{ 'hi'|center(8) }}|{{ 'abc'.center(7, '*') }}|{{ 'aXbX'.replace('X', '--') }}|"
    "{{ '-'.join(items) }}|{{ 'x\ny'|indent(2, true) }}",
    "{{ items|batch(2, 'z')|list }} {{ items|slice(2)|list }} {{ [[1], [2]]|sum(start=[]) }} "
    "{{ '%s=%s'|format('a', 1) }}",
    "{{ range(3)|join }} {{ dict(a=1)|xmlattr }} {{ 'http://x.org a'|urlize }}",
    "{% set j = joiner(',') %}{% for k, v in d.items() %}{{ j() }}{{ k }}={{ v }}{% endfor %}",
    "{{ 'a\tb'.expandtabs(4) }} {{ 'ab'.translate({97: 'zz'}) }} {{ '5'.zfill(3) }} "
    "{{ (1).to_bytes(2, 'big') }}",
]
CONTEXT = {"items": ["a", "b", "c"], "d": {"b": 1, "a": [1, {"x": 2}]},
           "tree": [{"name": "r", "children": [{"name": "c", "children": []}]}],
           "people": [{"city": "x", "n": 1}, {"city": "y", "n": 2}, {"city": "x", "n": 3}]}


@pytest.mark.parametrize("template", ORDINARY)
def test_ordinary_templates_render_as_jinja_does(template: str) -> None:
    plain = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    bounded = BoundedSandbox(undefined=jinja2.StrictUndefined)
    expected = plain.from_string(template).render(CONTEXT)
    assert bounded.from_string(template).render(CONTEXT) == expected


@pytest.mark.parametrize("template, name", [("{{ lipsum(5) }}", r"lipsum\(\)"),
                                            ("{{ items|random }}", "the filter 'random'")])
def test_what_would_differ_between_runs_is_refused_when_compiled(template: str, name: str,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=rf"m\.yaml:12: template syntax error in "
                       rf"spec\.request\.contents\[0\]\.parts\[0\]\.text: {name} is not "
                       "available: a template must give the same requests on every run"):
        render_one(tmp_path, template)


# Every way a template walks a mapping or a list: none may follow the hash seed.
WALKS = ("{% for k, v in row.items() %}{{ k }}={{ v }};{% endfor %}|{{ row|dictsort }}|"
         "{{ row.values()|unique|list }}|{{ row|tojson }}|{{ row|pprint }}|{{ row }}|"
         "{{ row.keys() - ['k0'] }}|{% for k in row.keys() - ['k1'] %}{{ k }}{% endfor %}|"
         "{{ row|groupby('0')|map(attribute='grouper')|list if false else 1 }}")


def test_the_same_rows_give_the_same_content_hash_in_any_process(tmp_path: Path) -> None:
    """Two processes with different hash seeds (which reorder a set of strings) plan the
    same requests, so apply never sees a change that is not one."""
    row = {f"k{i}": f"v{i % 3}" for i in range(10)}
    write_manifest(tmp_path, MINIMAL.replace('    - {id: a, q: "What is 1+1?"}\n'
                                             '    - {id: b, q: "What is 2+2?"}\n',
                                             f"    - {json.dumps({'id': 'a', **row})}\n")
                   .replace('"{{ row.q }}"', json.dumps(WALKS)))

    def content_hash(seed: str) -> tuple[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE"))}
        env.update(PYTHONHASHSEED=seed, PYTHONPATH=str(REPO), RUNNER_EMULATOR_LATENCY="0")
        out = subprocess.run([sys.executable, "-m", "runner.cli", "plan", str(tmp_path),
                              "--emulator", "--json"], env=env, capture_output=True, text=True,
                             timeout=60, check=True).stdout
        rendered = subprocess.run([sys.executable, "-m", "runner.cli", "render", str(tmp_path),
                                   "--name", "tiny"], env=env, capture_output=True, text=True,
                                  timeout=60, check=True).stdout
        return json.loads(out)["actions"][0]["content_hash"], rendered

    first, second = content_hash("1"), content_hash("2")
    assert first == second
    text = json.loads(first[1])["request"]["contents"][0]["parts"][0]["text"]
    keys = "id" + "".join(f"k{i}" for i in range(10) if i != 1)
    assert f"|{keys}|" in text       # keys minus others, in the row's own order
