"""`make images` builds what the chart and the operator name, with whichever builder is here."""

from __future__ import annotations

from typing import Any

import images
import pytest
from chart import only

from conveyor.operator.render import Images


@pytest.mark.parametrize("tool", images.TOOLS)
def test_every_image_is_built_with_one_version(tool: str) -> None:
    cmds = images.commands(tool, "r.example/team", "1.2", list(images.IMAGES), push=True)
    builds, pushes = cmds[:4], cmds[4:]
    tags = [c[c.index("-t") + 1] for c in builds]
    assert tags == [
        "r.example/team/conveyor-runtime:1.2",
        "r.example/team/conveyor-runtime:1.2-cpu",
        "r.example/team/conveyor-tools:1.2",
        "r.example/team/conveyor-operator:1.2",
    ]
    assert [c[-1] for c in pushes] == tags and all(c[1] == "push" for c in pushes)
    assert all(c[0] == tool and c[-1] == "." for c in builds)
    targets = [c[c.index("--target") + 1] if "--target" in c else None for c in builds]
    assert targets == ["gpu", "cpu", None, None]
    for c in builds:
        dockerfile = c[c.index("-f") + 1]
        assert (images.ROOT / dockerfile).exists()
        if tool != "docker":  # podman and buildah are told the per-Dockerfile ignore file
            assert c[c.index("--ignorefile") + 1] == f"{dockerfile}.dockerignore"
    assert images.commands(tool, "r", "1", ["tools"], push=False)[0][:2] == (
        [tool, "bud"] if tool == "buildah" else [tool, "build"]
    )


def test_the_chart_and_the_operator_name_the_images_make_builds(render: Any) -> None:
    built = {name: image.ref("r.example/team", "1.2") for name, image in images.IMAGES.items()}
    rendered = render("images.registry=r.example/team", "images.tag=1.2")
    container = only(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == built["operator"]
    for flag, name in [
        ("--runtime-image", "runtime"),
        ("--runtime-cpu-image", "runtime-cpu"),
        ("--tools-image", "tools"),
    ]:
        assert f"{flag}={built[name]}" in container["args"]
    operator = Images.from_registry("r.example/team", "1.2")
    assert (operator.runtime, operator.runtime_cpu, operator.tools) == (
        built["runtime"],
        built["runtime-cpu"],
        built["tools"],
    )
    assert (
        images.DEFAULT_REGISTRY
        == "localhost/conveyor"
        == Images.local().tools.split("/conveyor-")[0]
    )


def test_no_builder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda _: None)
    with pytest.raises(SystemExit, match="none of docker, podman, buildah is installed"):
        images.find_tool(None)
