#!/usr/bin/env python3
"""gen_template_goldens.py — golden outputs for lemma's chat-template engine.

Renders the real model templates in tests/data/templates/*.jinja, and a list of small language
snippets, with Python jinja2 configured the way Hugging Face transformers configures it
(transformers/utils/chat_template_utils.py, _compile_jinja_template):
    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson  (json.dumps, ensure_ascii=False, optional indent)
    env.globals["raise_exception"], env.globals["strftime_now"]
transformers itself is not imported (it need not be installed); the setup is replicated here.
AssistantTracker only adds the {% generation %} tag, which renders its body.

Writes, under tests/data/templates/:
    cases.json                 [{"template": file, "case": name}, ...]
    <case>.json, <case>.out    context and expected text (or <case>.err: expected error text)
    unit.json                  [{"name", "template", "context", "output" | "error"}, ...]
Run from the repository root: python3 tools/gen_template_goldens.py
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "tests", "data", "templates")


class AssistantTracker(Extension):
    """Parses {% generation %}...{% endgeneration %} and renders the body (no mask tracking)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateError(Exception):
    pass


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(src, ctx):
    """Returns ("output", text) or ("error", message)."""
    try:
        return "output", ENV.from_string(src).render(**ctx)
    except TemplateError as e:
        return "error", str(e)
    except Exception as e:  # jinja2 errors, and Python's TypeError etc. raised while rendering
        return "error", str(e)


# ---- conversations -------------------------------------------------------------------------

SYS = "You are a helpful assistant. Answer briefly."
UNI = "Héllo wörld — 世界 ✓ \"quoted\" 'single' back\\slash\ttab"
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {
            "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}},
]


def multi(sys_prompt=True):
    m = []
    if sys_prompt:
        m.append({"role": "system", "content": SYS})
    m += [
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "  What is 2+2?\n"},
    ]
    return m


def tool_conv(call_id="call_abc1"):
    return [
        {"role": "system", "content": SYS},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_weather",
                          "arguments": {"city": "Paris", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": call_id, "name": "get_weather",
         "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
    ]


def base(name, bos="", eos=""):
    return {"bos_token": bos, "eos_token": eos}


def cases_for(name):
    """(case suffix, context) pairs for one template."""
    toks = {
        "smollm2": ("<|im_start|>", "<|im_end|>"),
        "qwen2.5": ("", "<|im_end|>"),
        "qwen3": ("", "<|im_end|>"),
        "llama3.2": ("<|begin_of_text|>", "<|eot_id|>"),
        "llama3.3": ("<|begin_of_text|>", "<|eot_id|>"),
        "gemma3": ("<bos>", "<eos>"),
        "mistral-nemo": ("<s>", "</s>"),
        "phi3.5": ("<s>", "<|endoftext|>"),
        "deepseek-r1-distill-qwen": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
        "hermes3-tool-use": ("<|begin_of_text|>", "<|im_end|>"),
    }[name]
    b = {"bos_token": toks[0], "eos_token": toks[1]}
    if name.startswith("llama"):
        b["date_string"] = "26 Jul 2024"
    out = []

    def add(case, **kw):
        c = dict(b)
        c.update(kw)
        out.append((case, c))

    add("multi_sys_gen", messages=multi(True), add_generation_prompt=True)
    add("multi_sys_nogen", messages=multi(True) + [{"role": "assistant", "content": "4."}],
        add_generation_prompt=False)
    add("nosys_gen", messages=multi(False), add_generation_prompt=True)
    add("unicode", messages=[{"role": "user", "content": UNI}], add_generation_prompt=True)
    if name in ("qwen2.5", "qwen3", "llama3.2", "llama3.3"):
        add("tools_call_result", messages=tool_conv(), tools=TOOLS, add_generation_prompt=True)
        add("tools_first_turn", messages=tool_conv()[:2], tools=TOOLS, add_generation_prompt=True)
    if name == "mistral-nemo":
        add("tools_call_result", messages=tool_conv("abc123XYZ")[1:], tools=TOOLS,
            add_generation_prompt=True)
        add("bad_alternation", messages=[{"role": "user", "content": "a"},
                                         {"role": "user", "content": "b"}])
    if name == "llama3.3":
        conv = tool_conv()
        conv[2]["tool_calls"][0]["function"] = {"name": "brave_search",
                                                "arguments": {"query": "weather Paris"}}
        add("builtin_tools", messages=conv, tools=TOOLS, builtin_tools=["brave_search",
            "wolfram_alpha"], add_generation_prompt=True)
        add("tools_in_system", messages=tool_conv()[:2], tools=TOOLS, tools_in_user_message=False,
            add_generation_prompt=True)
    if name == "gemma3":
        add("bad_alternation", messages=[{"role": "user", "content": "a"},
                                         {"role": "user", "content": "b"}])
        add("content_parts", messages=[
            {"role": "system", "content": [{"type": "text", "text": "Sys parts."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " Describe. "}]}],
            add_generation_prompt=True)
    if name == "deepseek-r1-distill-qwen":
        conv = tool_conv()
        conv[2]["tool_calls"][0]["function"]["arguments"] = "{\"city\": \"Paris\"}"
        conv[2]["tool_calls"].append({"type": "function", "function": {
            "name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}})
        conv += [{"role": "tool", "content": "3"},
                 {"role": "assistant", "content": "<think>\nok\n</think>\n\nDone: 21.5 and 3."}]
        add("tools_call_result", messages=conv, add_generation_prompt=True)
        add("tool_result_pending", messages=tool_conv()[:2] + [conv[2], conv[3]],
            add_generation_prompt=True)
    if name == "hermes3-tool-use":
        tools = json.loads(json.dumps(TOOLS))
        tools[1]["function"]["parameters"]["properties"]["opts"] = {
            "type": "object", "description": "  options ", "additionalProperties": {"type": ["string", "integer"]}}
        tools[1]["function"]["parameters"]["properties"]["tags"] = {
            "type": "array", "description": "tags", "items": {"type": "string"}}
        add("tools_call_result", messages=tool_conv(), tools=tools, add_generation_prompt=True)
    if name == "qwen3":
        add("think_off", messages=multi(True), add_generation_prompt=True, enable_thinking=False)
        add("think_on", messages=multi(True), add_generation_prompt=True, enable_thinking=True)
        conv = multi(True) + [
            {"role": "assistant", "content": "<think>\nThe user asks 2+2.\n</think>\n\n4."},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "<think>\nSimple.\n</think>\n\n6."}]
        add("history_reasoning", messages=conv, add_generation_prompt=False)
        conv2 = tool_conv() + [{"role": "assistant", "reasoning_content": "Got it.",
                                "content": "It is 21.5 °C and clear."}]
        add("tools_reasoning_content", messages=conv2, tools=TOOLS, add_generation_prompt=False)
        conv3 = tool_conv()
        conv3[2]["tool_calls"].append({"type": "function", "function": {
            "name": "add", "arguments": "{\"a\": 1, \"b\": 2}"}})
        conv3.append({"role": "tool", "content": "3"})
        add("two_calls_two_results", messages=conv3, tools=TOOLS, add_generation_prompt=True)
    return out


# ---- language snippets ---------------------------------------------------------------------

UNIT = [
    ("text", "hello", {}),
    ("print_types", "{{ 1 }}|{{ 1.0 }}|{{ 0.1 }}|{{ 1e-5 }}|{{ 1e16 }}|{{ 123456789.125 }}|{{ -0.0 }}|{{ none }}|{{ true }}|{{ False }}|{{ 'x' }}|{{ undefined_var }}|", {}),
    ("print_containers", "{{ [1, 'a', none, true, 2.5] }} {{ {'k': 'v', 'n': [1]} }} {{ (1,) }} {{ (1, 'b') }} {{ \"it's\" }} {{ ['it\\'s', 'a\\nb'] }}", {}),
    ("arith", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 10 / 4 }} {{ 1 + 1.5 }} {{ true + 1 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ -3 | abs }} {{ 2 ** 3 ** 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ 1.5 }} {{ 'a' + 'b' }} {{ [1] + [2, 3] }}", {}),
    ("compare", "{{ 1 < 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ [1, 2] == [1, 2] }} {{ 'a' != 'a' }} {{ true == 1 }} {{ none == none }}", {}),
    ("logic", "{{ 1 and 2 }} {{ 0 and 2 }} {{ 0 or 'x' }} {{ not 1 }} {{ not (1 and 0) }} {{ none or [] }} {{ 'a' if true else 'b' }} {{ 'a' if false else 'b' }} [{{ 'a' if false }}]", {}),
    ("in", "{{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in undefined_thing }}", {}),
    ("if_elif", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}other{% endif %},{% endfor %}", {}),
    ("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_if", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }}{{ '.' if loop.last }} {% endfor %}", {}),
    ("for_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_cycle", "{% for i in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("set_block", "{% set x %}  a{{ 1 + 1 }}b  {% endset %}[{{ x }}]{% set y | upper %}hi{% endset %}{{ y }}", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet(name='Cy') }}", {}),
    ("macro_recursive", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", {}),
    ("call_block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 + 1 }}{% endcall %}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("whitespace_dash", "a  {{- 'b' -}}  c {%- if true -%}  d  {%- endif -%}  e {# c #}  f {#- c -#}  g", {}),
    ("trim_lstrip", "line1\n    {% if true %}\n    inner\n    {% endif %}\nline2\n  {# comment #}\nline3\n  {{ 'var' }}\n", {}),
    ("lstrip_plus", "x\n    {%+ if true %}y{% endif %}\n  {% if true +%}\nz{% endif %}", {}),
    ("raw", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}!", {}),
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e\"f' }}|{{ \"\\u00e9\\x41\\101\" }}|{{ 'x' 'y' }}|{{ '\\q' }}", {}),
    ("string_methods", "{{ '  ab  '.strip() }}|{{ 'xxabxx'.strip('x') }}|{{ '  ab'.lstrip() }}|{{ 'ab  '.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aBc'.upper() }}|{{ 'aBc'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}|{{ 'a\\nb\\n'.splitlines() }}", {}),
    ("str_index_slice", "{{ 'hello'[1] }}{{ 'hello'[-1] }}|{{ 'hello'[1:3] }}|{{ 'hello'[::-1] }}|{{ 'hello'[:-1] }}|{{ [1, 2, 3, 4][1:] }}|{{ [1, 2, 3, 4][::2] }}|{{ [1, 2, 3][-2] }}|{{ 'héllo'[1:3] }}|{{ [1,2,3][5:] }}|{{ 'abc'[-10:10] }}", {}),
    ("dict_access", "{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ d.get('a') }}|{{ d.get('zz', 'dflt') }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.items() | list }}|{{ d.n.x }}|{{ l.0 }}", {"d": {"a": 1, "n": {"x": "y"}}, "l": ["first"]}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ 's' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 's' is iterable }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ 2 is eq 2 }}{{ 1 is in [1] }}{{ [] is sequence }}{{ x is not none }}", {"x": 1}),
    ("filters_str", "{{ '  hi  ' | trim }}|{{ 'hi' | upper }}|{{ 'HI' | lower }}|{{ 'hello big-world (x' | title }}|{{ 'hello World' | capitalize }}|{{ 'abcabc' | replace('b', 'X') }}|{{ 'a b  c' | wordcount }}|{{ 'abc' | length }}|{{ 'héllo' | length }}|{{ 'xyx' | trim('x') }}|{{ 'abc' | reverse }}|{{ '<a>' | e }}", {}),
    ("filters_list", "{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'c'] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2, 2, 3, 1] | unique | list }}|{{ [1, 2, 3] | reverse | list }}|{{ [1, 2] | first }}|{{ [1, 2] | last }}|{{ [1, 2, 3] | join(', ') }}|{{ [1, 2] | length }}|{{ [1, 2] | count }}|{{ [1, 5, 3] | max }}|{{ [4, 2] | min }}|{{ [1, 2, 3] | sum }}|{{ 'ab' | list }}", {}),
    ("filters_attr", "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('/') }}|{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | map(attribute='role') | list }}|{{ msgs | selectattr('extra') | list | length }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ ['a', 'b'] | reject('equalto', 'a') | list }}|{{ ['a', 'b'] | map('upper') | list }}|{{ msgs | sort(attribute='role') | map(attribute='content') | join }}", {"msgs": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1", "extra": True}, {"role": "user", "content": "u2"}]}),
    ("filters_dict", "{{ d | dictsort }}|{{ d | items | list }}|{{ d | length }}|{% for k, v in d | dictsort(reverse=true) %}{{ k }}{{ v }}{% endfor %}", {"d": {"b": 2, "a": 1, "C": 3}}),
    ("filters_num", "{{ '42' | int }}|{{ '4.7' | int }}|{{ 'x' | int }}|{{ 'x' | int(7) }}|{{ 3 | float }}|{{ '2.5' | float }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 2.1 | round(method='ceil') }}|{{ -2 | abs }}|{{ 5 | string }}|{{ none | string }}", {}),
    ("filters_default", "{{ x | default('d') }}|{{ y | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | d('n') }}|{{ z | d }}", {"x": "set", "y": None}),
    ("tojson", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ [] | tojson }}|{{ {} | tojson(indent=4) }}|{{ 'é\"\\n\\u0001' | tojson }}|{{ [1.0, 0.5, 1e20, none, true] | tojson }}|{{ d | tojson(sort_keys=true) }}", {"d": {"z": [1, {"a": None}], "b": "ü"}}),
    ("indent", "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\nb' | indent('> ') }}", {}),
    ("globals", "{{ range(3) | list }}{{ range(1, 4) | list }}{{ range(5, 0, -2) | list }}{{ dict(a=1, b='x') }}{{ namespace(a=1).a }}{{ strftime_now is defined }}{{ raise_exception is defined }}", {}),
    ("literals", "{{ [1, [2, 3], {'a': (4, 5)}] }}|{{ {'a': 1, 'a': 2} }}|{{ 0x1F }}|{{ 1_000 }}|{{ 0o17 }}|{{ 0b101 }}|{{ 1.5e3 }}|{{ True }}{{ None }}", {}),
    ("undefined_ops", "[{{ u }}][{{ u | length }}][{% for x in u %}x{% endfor %}][{{ u is defined }}][{{ not u }}][{{ u == u2 }}][{{ u | default('dd') }}][{{ d.nokey is defined }}][{{ u ~ 'a' }}]", {"d": {}}),
    ("generation_tag", "{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("negative_index", "{{ messages[-1]['content'] }}|{{ messages[0].role }}|{{ (messages | last).content }}", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
    ("filter_precedence", "{{ -1 | abs }}|{{ 'a' ~ 'b' | upper }}|{{ 1 + [1, 2] | length }}|{{ not true is false }}", {}),
    ("err_raise", "a{{ raise_exception('Bad role: ' ~ role) }}", {"role": "robot"}),
    ("err_undefined_attr", "{{ d.x.y }}", {"d": {}}),
    ("err_add_types", "{{ 1 + 'a' }}", {}),
    ("err_mutate", "{{ [].append(1) }}", {}),
    ("newline_normalize", "a\r\nb\rc\n", {}),
    ("ws_mix", "a {% if true %}b{% endif %} c\n\t{% if true %}\n\td\n\t{% endif %}\n  {{ 'e' }}\n{# x #}\n  {# y #}  f\n{%- if true %}\n  g\n{%- endif %}\nh {%- raw -%}  r  {%- endraw -%}  i\n\n", {}),
    ("ws_dash_newlines", "x  \n\n  {%- set a = 1 -%}  \n\n  y{{- ' ' -}}\n z\n{% for i in [1, 2] -%}\n  [{{ i }}]\n{%- endfor %}\nend", {}),
    ("ws_trailing_two_newlines", "a\n\n", {}),
    ("floats", "{{ 1e22 }} {{ 123456789012345678.0 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1.5e300 }} {{ -1e-7 }} {{ 2 ** 0.5 }} {{ 1/3 }} {{ 100.0 }} {{ 1e15 }} {{ 9999999999999998.0 }} {{ [0.1, 1e-5] | tojson }}", {}),
    ("tojson_options", "{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(ensure_ascii=true) }}|{{ d | tojson(ensure_ascii=False) }}|{{ d | tojson(indent=1, separators=(', ', ' = ')) }}|{{ d | tojson(indent='\\t') }}|{{ '\\x7f' | tojson(ensure_ascii=true) }}", {"d": {"k": ["é", "😀", 1.5, None], "z": {}}}),
    ("indent_quirks", "[{{ '' | indent(2, true) }}][{{ 'a\\n' | indent }}][{{ 'a\\r\\nb\\x0bc' | indent(1) }}][{{ 'x\\n\\ny' | indent(2, true, true) }}]", {}),
    ("wordcount_repr", "{{ 'hello, wörld_x 42!' | wordcount }} {{ [u, 1] }} {{ {'a': u} }} {{ 'a\\r\\nb\\rc'.splitlines() }}", {}),
    ("context_types", "{{ i }} {{ f }} {{ b }} {{ n }} {{ l }} {{ d }} {{ i is integer }} {{ f is float }}", {"i": 3, "f": 2.5, "b": True, "n": None, "l": [1, "x"], "d": {"k": [True, None]}}),
]


def main():
    os.makedirs(DATA, exist_ok=True)
    manifest = []
    names = ["smollm2", "qwen2.5", "qwen3", "llama3.2", "llama3.3", "gemma3", "mistral-nemo",
             "phi3.5", "deepseek-r1-distill-qwen", "hermes3-tool-use"]
    for name in names:
        src = open(os.path.join(DATA, name + ".jinja"), encoding="utf-8").read()
        for case, ctx in cases_for(name):
            cname = f"{name}.{case}"
            kind, text = render(src, ctx)
            with open(os.path.join(DATA, cname + ".json"), "w", encoding="utf-8") as f:
                json.dump(ctx, f, ensure_ascii=False, indent=1)
                f.write("\n")
            for ext in (".out", ".err"):
                p = os.path.join(DATA, cname + ext)
                if os.path.exists(p):
                    os.remove(p)
            with open(os.path.join(DATA, cname + (".out" if kind == "output" else ".err")), "w",
                      encoding="utf-8", newline="") as f:
                f.write(text)
            manifest.append({"template": name + ".jinja", "case": cname})
    with open(os.path.join(DATA, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    unit = []
    for name, src, ctx in UNIT:
        kind, text = render(src, ctx)
        unit.append({"name": name, "template": src, "context": ctx, kind: text})
    with open(os.path.join(DATA, "unit.json"), "w", encoding="utf-8") as f:
        json.dump(unit, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(manifest)} template cases, {len(unit)} unit snippets", file=sys.stderr)


if __name__ == "__main__":
    main()
