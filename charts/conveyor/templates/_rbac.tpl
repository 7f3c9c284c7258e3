{{/*
The operator's permissions, in one place so that the Role and the ClusterRole cannot differ.
tests/chart/test_rbac.py checks these against the API calls the operator makes.
*/}}

{{/* Rules on namespaced resources: a Role in namespaced mode, else part of the ClusterRole. */}}
{{- define "conveyor.operator.namespacedRules" -}}
# The ConveyorServices it reconciles; kopf keeps its progress and finalizer on the object itself.
- apiGroups: ["conveyor.dev"]
  resources: ["conveyorservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["conveyor.dev"]
  resources: ["conveyorservices/status"]
  verbs: ["patch"]
# The children it renders; each is watched so a hand-made change is put back, and deleted when
# its option is removed.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# A token secret or a volume claim that does not exist becomes a Degraded condition; the operator
# only checks that it is there and never copies a secret into a child.
- apiGroups: [""]
  resources: ["secrets", "persistentvolumeclaims"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Rules on cluster-scoped resources: always a ClusterRole, whatever the mode. */}}
{{- define "conveyor.operator.clusterRules" -}}
# kopf follows CRDs coming and going (the Prometheus Operator's may be installed later).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# The largest GPU count a node offers: a spec asking for more becomes a Degraded condition.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list"]
{{- end }}
