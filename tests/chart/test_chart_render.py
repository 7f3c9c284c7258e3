"""The chart lints, renders and validates with the real helm, and renders what it promises."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import chart
import pytest
import yaml
from chart import of_kind, only
from pod_security import restricted_violations

Objects = list[dict[str, Any]]


def test_helm_lint_is_clean_with_defaults_and_every_ci_values_file(helm_binary: object) -> None:
    assert chart.lint_problems() == []


def test_every_rendered_object_passes_strict_validation(helm_binary: object) -> None:
    # Default values and every charts/conveyor/ci/*.yaml, CRDs included.
    assert chart.ci_values_files(), "charts/conveyor/ci/ must hold an all-features values file"
    assert chart.render_problems() == []


def test_validation_rejects_an_unknown_field(default_objects: Objects) -> None:
    deployment = copy.deepcopy(only(default_objects, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    errors = chart.validate_object(deployment)
    assert errors and "livenesProbe" in errors[0]


def test_structural_schema_rejects_a_bad_prometheusrule(all_features_objects: Objects) -> None:
    rule = copy.deepcopy(only(all_features_objects, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["fore"] = "5m"
    assert any("fore" in error for error in chart.validate_object(rule))
    rule = copy.deepcopy(only(all_features_objects, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "sum(rate(x[5m])"
    assert any("unclosed" in error for error in chart.validate_object(rule))


def test_operator_runs_two_peering_hardened_replicas(default_objects: Objects) -> None:
    deployment = only(default_objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert "strategy" not in spec  # a rolling update: the standby takes over meanwhile
    pod = spec["template"]["spec"]
    assert restricted_violations(pod) == []
    peering = only(default_objects, "ClusterKopfPeering")
    assert f"--peering={peering['metadata']['name']}" in pod["containers"][0]["args"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    probe = container["livenessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": "liveness"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert f"--liveness-port={ports['liveness']}" in container["args"]
    assert container["args"][0] == "run"
    assert pod["serviceAccountName"] == only(default_objects, "ServiceAccount")["metadata"]["name"]


def images(rendered: Objects) -> dict[str, str]:
    container = only(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)
    return {
        "operator": container["image"],
        "runtime": args["runtime-image"],
        "runtime-cpu": args["runtime-cpu-image"],
        "tools": args["tools-image"],
    }


def test_images_default_to_a_local_name_and_the_app_version(default_objects: Objects) -> None:
    chart_yaml = yaml.safe_load((chart.CHART / "Chart.yaml").read_text())
    project = tomllib.loads((chart.ROOT / "operator" / "pyproject.toml").read_text())
    version = project["project"]["version"]
    assert chart_yaml["appVersion"] == version
    # What `make images` builds by default; no public registry is implied.
    assert images(default_objects) == {
        "operator": f"localhost/conveyor/conveyor-operator:{version}",
        "runtime": f"localhost/conveyor/conveyor-runtime:{version}",
        "runtime-cpu": f"localhost/conveyor/conveyor-runtime:{version}-cpu",
        "tools": f"localhost/conveyor/conveyor-tools:{version}",
    }


def test_one_registry_and_tag_name_every_image(render: Any) -> None:
    rendered = render("images.registry=registry.example/team/", "images.tag=dev")
    assert images(rendered) == {
        "operator": "registry.example/team/conveyor-operator:dev",
        "runtime": "registry.example/team/conveyor-runtime:dev",
        "runtime-cpu": "registry.example/team/conveyor-runtime:dev-cpu",
        "tools": "registry.example/team/conveyor-tools:dev",
    }
    assert images(render("images.overrides.tools=other/tools:1"))["tools"] == "other/tools:1"


def test_the_image_flags_match_the_operators_own_image_names(default_objects: Objects) -> None:
    from conveyor.operator.render import Images

    local = Images.local()
    found = images(default_objects)
    assert (found["runtime"], found["runtime-cpu"], found["tools"]) == (
        local.runtime,
        local.runtime_cpu,
        local.tools,
    )


def test_cluster_wide_mode_uses_one_cluster_role_and_watches_everything(
    default_objects: Objects,
) -> None:
    assert of_kind(default_objects, "Role") == []
    assert of_kind(default_objects, "RoleBinding") == []
    names = {obj["metadata"]["name"] for obj in of_kind(default_objects, "ClusterRole")}
    assert names == {"conveyor-operator", "conveyor-view", "conveyor-edit"}
    assert of_kind(default_objects, "KopfPeering") == []
    container = only(default_objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert not any(arg.startswith("--namespace") for arg in container["args"])


def test_namespaced_mode_uses_a_role_in_the_watched_namespace(render: Any) -> None:
    rendered = render("operator.watchNamespace=models")
    role = only(rendered, "Role")
    binding = only(rendered, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "models"
    assert binding["subjects"][0]["namespace"] == chart.NAMESPACE
    container = only(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=models" in container["args"]
    # Nothing cluster-scoped is needed: the peering record is a KopfPeering in that namespace.
    assert not any(
        o["metadata"]["name"].endswith("-operator") for o in of_kind(rendered, "ClusterRole")
    )
    assert only(rendered, "KopfPeering")["metadata"]["namespace"] == "models"
    assert of_kind(rendered, "ClusterKopfPeering") == []


def test_watch_release_namespace(render: Any) -> None:
    role = only(render("operator.watchReleaseNamespace=true"), "Role")
    assert role["metadata"]["namespace"] == chart.NAMESPACE


def test_namespaced_mode_without_cluster_roles(render: Any) -> None:
    restricted = render(values_files=(chart.CHART / "ci" / "namespaced-restricted-values.yaml",))
    assert of_kind(restricted, "ClusterRole") == of_kind(restricted, "ClusterRoleBinding") == []
    assert only(restricted, "Role")["metadata"]["namespace"] == chart.NAMESPACE


def test_optional_features_are_off_by_default(default_objects: Objects) -> None:
    kinds = {obj["kind"] for obj in default_objects}
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "ClusterKopfPeering",
    }


def test_all_features_render_the_alerts(all_features_objects: Objects) -> None:
    rule = only(all_features_objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    alerts = {r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert alerts == {
        "ConveyorEngineDown",
        "ConveyorSidecarWorkerCrashes",
        "ConveyorExposedToolTimeHigh",
        "ConveyorRequestsWaiting",
    }
    assert all(
        r["labels"]["team"] == "ml-platform" for g in rule["spec"]["groups"] for r in g["rules"]
    )


def test_alert_thresholds_are_values(render: Any) -> None:
    rule = only(
        render("prometheusRule.enabled=true", "prometheusRule.thresholds.requestsWaiting=42"),
        "PrometheusRule",
    )
    waiting = next(r for r in rule["spec"]["groups"][0]["rules"] if r["alert"].endswith("Waiting"))
    assert waiting["expr"].rstrip().endswith("> 42")
    # Alert templates reach Prometheus unexpanded.
    assert "{{ $labels.namespace }}" in waiting["annotations"]["summary"]


def test_dashboards_configmap_carries_every_dashboard_with_the_sidecar_label(
    default_objects: Objects, render: Any
) -> None:
    configmap = only(default_objects, "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted(path.name for path in (chart.CHART / "dashboards").glob("*.json"))
    assert sorted(configmap["data"]) == files
    for name in files:
        assert configmap["data"][name] == (chart.CHART / "dashboards" / name).read_text().rstrip(
            "\n"
        )
    relabelled = only(
        render("dashboards.label=dashboards", "dashboards.labelValue=conveyor"), "ConfigMap"
    )
    assert relabelled["metadata"]["labels"]["dashboards"] == "conveyor"
    assert "grafana_dashboard" not in relabelled["metadata"]["labels"]
    assert of_kind(render("dashboards.enabled=false"), "ConfigMap") == []


@pytest.mark.parametrize("watch", ["", "models"])
def test_notes_print_paste_able_commands(helm_binary: object, watch: str) -> None:
    notes = chart.helm(
        "install",
        "conveyor",
        str(chart.CHART),
        "--dry-run=client",
        "--namespace",
        chart.NAMESPACE,
        "--set",
        f"operator.watchNamespace={watch}",
    )
    assert "kubectl -n conveyor-system rollout status deployment/conveyor-operator" in notes
    assert "get conveyorservices" in notes
    if watch:
        assert "kubectl -n models get conveyorservices" in notes
