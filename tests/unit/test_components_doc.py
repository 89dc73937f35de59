"""docs/components.md is generated from the driver specs; this keeps the committed copy current."""

from pathlib import Path

from osiris_action import components


def test_components_doc_is_current():
    doc = Path(__file__).parents[2] / "docs" / "components.md"
    assert doc.read_text() == components.markdown(), (
        "run: python -m osiris_action.components > docs/components.md"
    )


def test_every_component_documents_every_key():
    text = components.markdown()
    for name in components.names():
        spec = components.get(name).spec
        assert f"`{spec['name']}`" in text
        for key in spec["config"]["properties"]:
            assert f"| `{key}` |" in text
