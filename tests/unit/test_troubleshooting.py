"""docs/troubleshooting.md is generated from cnnatlas/bad_inputs.yaml, the table of bad
inputs; these tests fail when the page, the table, the library's messages and the tests
that exercise them drift apart."""

import copy

from cnnatlas import troubleshooting


def test_page_matches_the_table():
    """Run `PYTHONPATH=workflow/scripts python -m cnnatlas.troubleshooting` after editing it."""
    assert troubleshooting.PAGE.read_text(encoding="utf-8") == troubleshooting.render()


def test_every_message_is_still_written_by_the_library_or_asserted_by_a_test():
    assert troubleshooting.drift() == []
    assert troubleshooting.main(["--check"]) == 0


def test_table_covers_every_kind_of_input():
    table = troubleshooting.sections()
    titles = [s["title"] for s in table]
    assert titles[:2] == ["Images", "ImageFolder and manifest"]
    assert {"Models and checkpoints", "Class index", "Configuration"} <= set(titles)
    rows = [r for s in table for r in s["rows"]]
    assert len(rows) > 60
    assert sum("check" in r for r in rows) > 50


def test_drift_is_found():
    table = copy.deepcopy(troubleshooting.sections())
    row = next(r for s in table for r in s["rows"] if "library" in r.get("check", {}))
    row["check"]["library"] = "a message no code writes"
    table[0]["tests"].append("tests/unit/test_nothing_here.py")
    table[1]["rows"][0].pop("check")
    problems = troubleshooting.drift(table)
    assert any("no code writes" in p for p in problems)
    assert any("test_nothing_here" in p for p in problems)
    assert any("has no check" in p for p in problems)
    assert troubleshooting.render(table) != troubleshooting.render()


def test_every_message_the_bad_input_e2e_tests_assert_is_in_the_table():
    """The other direction: a message the tests expect is documented in the table."""
    from tests.e2e.test_bad_input_e2e import CONFIG_CASES, MODEL_CASES

    messages = " ".join(
        " ".join(r.get("message", "").split())
        for s in troubleshooting.sections()
        for r in s["rows"]
    )
    expected = [t for _, texts in CONFIG_CASES.values() for t in texts]
    expected += [text for _, text in MODEL_CASES.values()]
    missing = [t for t in expected if " ".join(t.split()) not in messages]
    assert missing == []
