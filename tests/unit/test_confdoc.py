"""The configuration reference (docs/configuration.md) is generated from the schema and
fails here when the two disagree, as the map registry's files do."""

import copy

import pytest
from cnnatlas import confdoc
from cnnatlas.schema import load_schema


def test_every_schema_key_has_a_description():
    assert confdoc.undescribed() == []


def test_page_matches_the_schema():
    """Run `PYTHONPATH=workflow/scripts python -m cnnatlas.confdoc` after editing the schema."""
    assert confdoc.PAGE.read_text() == confdoc.render()
    assert confdoc.main(["--check"]) == 0


def test_every_key_is_on_the_page_with_its_default():
    page = confdoc.PAGE.read_text()
    names = [k.name for k in confdoc.keys()]
    assert len(names) > 150 and len(set(names)) == len(names)
    for key in confdoc.keys():
        assert f"`{key.name}`\n" in page
    assert "### `extract.batch_size`\n\n**type** integer · **default** `64`" in page
    assert "`models.<model>.transform.crop`" in page


def test_render_is_deterministic_and_follows_a_changed_schema():
    schema = copy.deepcopy(load_schema())
    assert confdoc.render(schema) == confdoc.render(schema)
    schema["properties"]["extract"]["properties"]["topk"]["default"] = 7
    assert confdoc.render(schema) != confdoc.PAGE.read_text()
    assert "**default** `7`" in confdoc.render(schema)


def test_check_fails_on_a_stale_page(tmp_path, monkeypatch):
    stale = tmp_path / "configuration.md"
    stale.write_text("# Configuration reference\n")
    monkeypatch.setattr(confdoc, "PAGE", stale)
    monkeypatch.setattr(confdoc, "ROOT", tmp_path)
    assert confdoc.main(["--check"]) == 1
    assert confdoc.main([]) == 0 and confdoc.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("node", "text"),
    [
        ({"type": "integer", "minimum": 1}, "≥ 1"),
        ({"type": "string", "enum": ["a", "b"]}, 'one of `"a"`, `"b"`'),
        (
            {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["auto"]}]},
            '`"auto"`',
        ),
    ],
)
def test_allowed_values(node, text):
    assert text in confdoc._allowed(node)
