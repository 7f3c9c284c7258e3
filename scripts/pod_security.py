"""The Pod Security Standards' `restricted` profile, checked on a pod spec offline.

No API server (and so no Pod Security admission) runs here; this module repeats the profile's
checks as https://kubernetes.io/docs/concepts/security/pod-security-standards/ lists them
(baseline plus restricted, Kubernetes 1.35), on the pod spec a Deployment's template holds.
`make chart` runs it on the chart's operator pod, tests/operator on every pod the operator renders.
"""

from __future__ import annotations

from typing import Any

_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
_SELINUX_TYPES = {
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
}
_PROFILES = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What the `restricted` profile refuses in `pod` (a PodSpec); empty when it is admitted."""
    found: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    user_namespace = pod.get("hostUsers") is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key} is true")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _VOLUME_TYPES:
            found.append(f"volume {volume['name']} has type {sorted(kinds - _VOLUME_TYPES)}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            found.append(f"unsafe sysctl {sysctl.get('name')}")
    if (pod_sc.get("seLinuxOptions") or {}).get("type") not in _SELINUX_TYPES:
        found.append("pod seLinuxOptions.type")
    if pod_sc.get("runAsUser") == 0 and not user_namespace:
        found.append("pod runAsUser is 0")
    profile = (pod_sc.get("appArmorProfile") or {}).get("type")
    if profile not in (None, *_PROFILES):
        found.append(f"pod appArmorProfile {profile}")

    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for c in containers:
        name, sc = c["name"], c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities {caps['add']}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            found.append(f"{name}: hostPort")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True and not user_namespace:
            found.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0 and not user_namespace:
            found.append(f"{name}: runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in _PROFILES:
            found.append(f"{name}: seccompProfile is {seccomp}")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, *_PROFILES):
            found.append(f"{name}: appArmorProfile {apparmor}")
        if (sc.get("seLinuxOptions") or {}).get("type") not in _SELINUX_TYPES:
            found.append(f"{name}: seLinuxOptions.type")
        # Since 1.35 an unmasked /proc is allowed in a pod with its own user namespace.
        if sc.get("procMount", "Default") != "Default" and not user_namespace:
            found.append(f"{name}: procMount {sc['procMount']}")
    return found
