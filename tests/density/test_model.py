"""The density head: found like a detector model, hash-checked when shipped, loaded with
one-line errors for a missing, damaged or wrong file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crowdwatch.density import model as density_model
from crowdwatch.density.model import (
    DEFAULT_HEAD,
    EMBEDDED_HEADS,
    HEAD_XML,
    load_head,
    resolve_head,
    verify_embedded_head,
)
from crowdwatch.detect.models import EMBEDDED_DIR
from crowdwatch.errors import ModelError

SHIPPED = EMBEDDED_DIR / DEFAULT_HEAD
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CROWDWATCH_MODEL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_shipped_head_is_found_checked_and_loads(bare_machine: Path) -> None:
    xml = resolve_head()
    assert xml == SHIPPED / HEAD_XML
    head = load_head(xml)
    assert sorted(p.get_friendly_name() for p in head.get_parameters()) == ["p3", "p4"]


def test_the_shipped_head_is_small() -> None:
    assert sum(f.stat().st_size for f in SHIPPED.iterdir()) <= 5 * 1024 * 1024


@pytest.mark.parametrize(("damage", "file_name"), [
    ("flip", "density_head.bin"),
    ("flip", "density_head.xml"),
    ("delete", "density_head.bin"),
    ("delete", "metadata.yaml"),
])
def test_a_damaged_shipped_head_fails_with_one_line(
        bare_machine: Path, monkeypatch: pytest.MonkeyPatch, damage: str, file_name: str) -> None:
    package = bare_machine / "package"
    shutil.copytree(SHIPPED, package / DEFAULT_HEAD)
    target = package / DEFAULT_HEAD / file_name
    if damage == "flip":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
    else:
        target.unlink()
    monkeypatch.setattr(density_model, "model_search_dirs", lambda: [package])
    with pytest.raises(ModelError, match="damaged") as error:
        resolve_head()
    assert "\n" not in str(error.value) and "reinstall" in str(error.value)


def test_every_shipped_file_has_a_sum() -> None:
    assert sorted(EMBEDDED_HEADS[DEFAULT_HEAD]) == sorted(p.name for p in SHIPPED.iterdir())
    verify_embedded_head(SHIPPED)


@pytest.mark.parametrize("name", ["no_such_head", "/nowhere/head.xml", "dir/head"])
def test_a_missing_head_is_named_in_one_line(bare_machine: Path, name: str) -> None:
    with pytest.raises(ModelError, match=r"density model .* not found") as error:
        resolve_head(name)
    assert "\n" not in str(error.value)


def test_a_users_copy_by_path_is_not_hash_checked(bare_machine: Path) -> None:
    mine = bare_machine / "mine"
    shutil.copytree(SHIPPED, mine)
    (mine / "metadata.yaml").write_text("edited: true\n")
    assert resolve_head(str(mine)) == mine / HEAD_XML


def test_an_unreadable_head_fails_to_load_in_one_line(tmp_path: Path) -> None:
    xml = tmp_path / HEAD_XML
    xml.write_text("<net><layers>")
    with pytest.raises(ModelError, match="cannot load density model") as error:
        load_head(xml)
    assert "\n" not in str(error.value)


def test_a_model_that_is_not_a_head_is_refused() -> None:
    detector = EMBEDDED_DIR / "yolo11n_int8_openvino_model" / "yolo11n.xml"
    with pytest.raises(ModelError, match="not a crowdwatch density head"):
        load_head(detector)


def head_with_outputs(tmp_path: Path, names: list[str],
                      inputs: tuple[str, ...] = ("p3", "p4")) -> Path:
    """A head-shaped model (inputs p3, p4 unless given) whose outputs carry these names."""
    import openvino as ov
    import openvino.opset13 as ops

    parameters = [ops.parameter([1, 64, -1, -1], ov.Type.f32, name=name) for name in inputs]
    outputs = [ops.reduce_mean(parameters[0], [1], True) for _ in names]
    model = ov.Model(outputs, parameters, "head")
    for output, name in zip(model.outputs, names, strict=True):
        output.set_names({name})
    xml = tmp_path / HEAD_XML
    ov.save_model(model, xml)
    return xml


@pytest.mark.parametrize(("names", "valid"), [
    (["density"], True),
    (["density", "crowd"], True),
    (["density", "other"], False),
    (["density", "crowd", "crowd2"], False),
])
def test_a_head_has_a_density_output_and_may_have_a_crowd_one(
        tmp_path: Path, names: list[str], valid: bool) -> None:
    xml = head_with_outputs(tmp_path, names)
    if valid:
        assert len(load_head(xml).outputs) == len(names)
    else:
        with pytest.raises(ModelError, match="optionally a crowd output"):
            load_head(xml)


@pytest.mark.parametrize(("inputs", "valid"), [
    (("p3", "p4"), True),
    (("p3", "p4", "p2"), True),
    (("p3",), False),
    (("p3", "p4", "p5"), False),
])
def test_a_head_reads_p3_and_p4_and_may_read_p2(
        tmp_path: Path, inputs: tuple[str, ...], valid: bool) -> None:
    xml = head_with_outputs(tmp_path, ["density", "crowd"], inputs)
    if valid:
        assert len(load_head(xml).get_parameters()) == len(inputs)
    else:
        with pytest.raises(ModelError, match="inputs p3 and p4"):
            load_head(xml)


def test_the_shipped_head_gives_density_and_crowd() -> None:
    head = load_head(SHIPPED / HEAD_XML)
    assert [sorted(o.get_names()) for o in head.outputs] == [["density"], ["crowd"]]


def test_the_manifest_lists_the_same_sums() -> None:
    import yaml

    manifest = yaml.safe_load((REPO / "models" / "manifest.yaml").read_text())
    entry = next(m for m in manifest["models"] if m["name"] == DEFAULT_HEAD)
    assert entry["files"] == {f"{DEFAULT_HEAD}/{name}": digest
                              for name, digest in EMBEDDED_HEADS[DEFAULT_HEAD].items()}
    assert entry["size_bytes"] == sum(f.stat().st_size for f in SHIPPED.iterdir())


def _quantizers_feeding(output: object) -> int:
    """FakeQuantize nodes on the paths from the model's parameters to this output."""
    seen: set[str] = set()
    stack = [output.get_node()]  # type: ignore[attr-defined]
    quantizers = 0
    while stack:
        node = stack.pop()
        if node.get_name() in seen:
            continue
        seen.add(node.get_name())
        quantizers += node.get_type_name() == "FakeQuantize"
        stack.extend(i.get_source_output().get_node() for i in node.inputs())
    return quantizers


def test_the_crowd_output_is_not_int8_and_the_density_output_is() -> None:
    # The INT8 crowd head counted ShanghaiTech A 0-19 at 224 instead of 128 on an AVX2-only
    # CPU (docs/ACCURACY.md, "The crowd head in fp32"); the main head's INT8 counts alike on
    # both kinds of CPU, and saves ~1 ms on every frame.
    head = load_head(SHIPPED / HEAD_XML)
    density, crowd = head.outputs
    assert _quantizers_feeding(crowd) == 0
    assert _quantizers_feeding(density) > 0
