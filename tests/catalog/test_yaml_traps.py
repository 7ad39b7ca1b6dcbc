"""YAML 1.1/1.2 traps: found in plain YAML and in template source, with line, column and key.

Each bad case asserts the exact position and key path and the words of the fix, so that a
rule firing at the wrong place fails; each good case asserts that nothing is found.
"""

from __future__ import annotations

import pytest
import yaml_rs

from controlplane.catalog.yaml_traps import (
    PLACEHOLDER,
    TrapRule,
    find_traps,
    mask_template,
    template_traps,
    trap_of,
)

TEMPLATE = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
spec:
  template:
    spec:
      containers:
        - name: {{ service.name }}
          image: {{ images.postgres }}
      volumes:
        - name: run
          emptyDir: {}
        - name: initdb
          configMap:
            name: {{ "initdb-" ~ instance.name }}
{% if plan.replicas > 1 %}
            optional: true
{% endif %}
            defaultMode: 0555
"""


@pytest.mark.parametrize(
    ("text", "rule", "words"),
    [
        ("0555", TrapRule.LEADING_ZERO, "YAML 1.1 reads octal 0555 = 365. Write the number in"),
        ("0555", TrapRule.LEADING_ZERO, "(365 # 0555 if the octal was meant, 555 if not)"),
        ("08", TrapRule.LEADING_ZERO, "YAML 1.2 (the renderer) reads the number 8, YAML 1.1 the"),
        ("-012", TrapRule.LEADING_ZERO, "octal -012 = -10"),
        ("07", TrapRule.LEADING_ZERO, "both read 7 here, by luck"),
        ("0o555", TrapRule.OCTAL_PREFIX, "Write it in decimal: 365 # 0o555"),
        ("yes", TrapRule.BOOLEAN, 'the boolean true in YAML 1.1. Quote it ("yes")'),
        ("NO", TrapRule.BOOLEAN, "the boolean false in YAML 1.1"),
        ("on", TrapRule.BOOLEAN, "the boolean true"),
        ("Off", TrapRule.BOOLEAN, "the boolean false"),
        ("y", TrapRule.BOOLEAN, "the boolean true"),
        ("n", TrapRule.BOOLEAN, "the boolean false"),
        ("1:30", TrapRule.SEXAGESIMAL, "the base-60 number 90 in YAML 1.1"),
        ("22:22", TrapRule.SEXAGESIMAL, "the base-60 number 1342 in YAML 1.1"),
        ("1:30.5", TrapRule.SEXAGESIMAL, "the base-60 number 90.5"),
        ("0b101", TrapRule.NUMBER, "a number in YAML 1.1 but not in YAML 1.2"),
        ("1_000", TrapRule.NUMBER, "a number in YAML 1.1 but not in YAML 1.2"),
    ],
)
def test_each_trap_is_named_with_a_fix(text: str, rule: TrapRule, words: str) -> None:
    found = trap_of(text)
    assert found is not None
    assert found[0] is rule
    assert words in found[1]


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "10",
        "-3",
        "0.5",
        "1.0",
        "0x1F",
        "true",
        "False",
        "null",
        "~",
        ".inf",
        "postgres:16.6",
        "8080:80",
        "01:30",
        "10Gi",
        "250m",
        "yes-please",
        "Y2K",
        "ON_ERROR",
    ],
)
def test_values_both_versions_agree_on_are_fine(text: str) -> None:
    assert trap_of(text) is None


def test_position_and_key_path_of_a_value() -> None:
    text = "spec:\n  volumes:\n    - name: a\n    - name: b\n      configMap: {defaultMode: 0555}\n"
    (trap,) = find_traps(text)
    assert (trap.line, trap.column) == (5, 32)
    assert trap.path == "spec.volumes[1].configMap.defaultMode"
    assert trap.rule is TrapRule.LEADING_ZERO
    assert trap.error("x.yaml").location == "x.yaml:5:32: spec.volumes[1].configMap.defaultMode"


def test_a_key_is_checked_too() -> None:
    (trap,) = find_traps("on:\n  push: {}\n")
    assert (trap.line, trap.column, trap.path) == (1, 1, "on")
    assert trap.message.startswith("the key on is the string")


def test_items_of_flow_and_block_sequences() -> None:
    traps = find_traps("enum: [yes, no]\nlist:\n  - 'off'\n  - off\n")
    assert [(t.line, t.path, t.text) for t in traps] == [
        (1, "enum[0]", "yes"),
        (1, "enum[1]", "no"),
        (4, "list[1]", "off"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        'mode: "0555"\n',
        "mode: '0555'\n",
        "mode: !!str 0555\n",
        "mode: 365  # 0555\n",
        "# enabled: yes\n",
        "script: |\n  enabled: yes\n  mode: 0555\n",
        "text: >-\n  at 1:30\n  yes\n",
        'time: "22:22"\n',
        "words: yes and no\n",
    ],
)
def test_quoted_tagged_commented_and_block_text_is_fine(text: str) -> None:
    assert find_traps(text) == []


def test_documents_are_labelled_by_kind_and_name() -> None:
    text = (
        "kind: ConfigMap\nmetadata: {name: a}\ndata: {x: yes}\n---\n"
        "kind: Secret\nmetadata:\n  name: b\ntype: Opaque\nstringData: {k: on}\n"
    )
    traps = find_traps(text)
    assert [(t.document, t.path, t.line) for t in traps] == [
        ("ConfigMap/a", "data.x", 3),
        ("Secret/b", "stringData.k", 9),
    ]


def test_a_template_is_checked_on_its_source_lines() -> None:
    (trap,) = template_traps(TEMPLATE)
    assert (trap.line, trap.column) == (20, 26)
    assert TEMPLATE.splitlines()[trap.line - 1][trap.column - 1 :] == "0555"
    assert trap.document == "StatefulSet/postgres"
    assert trap.path == "spec.template.spec.volumes[1].configMap.defaultMode"


@pytest.mark.parametrize(
    "source",
    [
        "mode: {{ params.mode }}\n",
        "enabled: {{ params.enabled }}\n",
        'value: {{ "0555" }}\n',
        "value: {{ 0555 }}\n",
        "{{ params.key }}: 1\n",
        'value: "{{ params.on }}"\n',
        'name: {{ "a" ~ "}}" ~ "yes" }}\n',
        "{# mode: 0555 #}\nmode: 365\n",
        "{% set mode = 0555 %}\nmode: {{ mode }}\n",
        "{% if x %}\nvalue: {{ x }}\n{% else %}\nvalue: 1\n{% endif %}\n",
        'value: {{ "a" ~\n   "b" }}\nother: 1\n',
        "port: 80{{ params.suffix }}\n",
        "list: [{{ a }}, {{ b }}]\n",
        "{% filter indent(4) %}{% include '_x.yaml.j2' %}{% endfilter %}\n",
    ],
)
def test_jinja_constructs_never_count(source: str) -> None:
    assert template_traps(source) == []


def test_a_trap_after_a_multi_line_expression_keeps_its_line_and_column() -> None:
    source = 'a: {{ "x" ~\n      "y" }}\nb: 0555\n'
    (trap,) = template_traps(source)
    assert (trap.line, trap.column, trap.path) == (3, 4, "b")


def test_masking_keeps_every_line_and_column() -> None:
    masked = mask_template(TEMPLATE)
    assert [len(line) for line in masked.splitlines()] == [
        len(line) for line in TEMPLATE.splitlines()
    ]
    assert "{" not in masked.replace("{}", "")
    assert f"image: {PLACEHOLDER * len('{{ images.postgres }}')}" in masked
    # What is left is YAML, and the renderer's parser reads the trap the way this module says.
    assert (
        yaml_rs.loads(masked)["spec"]["template"]["spec"]["volumes"][1]["configMap"]["defaultMode"]
        == 555
    )


def test_text_that_stops_being_yaml_keeps_the_traps_before_it() -> None:
    traps = find_traps("a: 0555\nb: [unclosed\nc: yes\n")
    assert [t.path for t in traps] == ["a"]
