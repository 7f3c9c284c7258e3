{{/*
The operator's permissions, in one place so that the Role and the ClusterRole cannot differ.
tests/chart/test_rbac.py checks these against the API calls the operator makes.
*/}}

{{/* Rules on namespaced resources: a Role in namespaced mode, else part of the ClusterRole. */}}
{{- define "conveyor.operator.namespacedRules" -}}
# The ConveyorServices it reconciles; kopf keeps its progress on the object itself.
- apiGroups: ["conveyor.dev"]
  resources: ["conveyorservices"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["conveyor.dev"]
  resources: ["conveyorservices/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion, which an API server (OpenShift's, for one) allows only to
# those who may update the owner's finalizers.
- apiGroups: ["conveyor.dev"]
  resources: ["conveyorservices/finalizers"]
  verbs: ["update"]
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
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Issue 19: routing through the Gateway API Inference Extension, and KEDA autoscaling.
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The pods' status and Unhealthy events tell a crash loop, an image that cannot be pulled, a
# missing Secret, a pod nothing can schedule, or tools that cannot be isolated: no Secret is read.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
# A volume claim that does not exist becomes a Degraded condition.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get"]
{{- end }}

{{/* Namespaced mode: the replicas' peering record, a KopfPeering in the watched namespace. */}}
{{- define "conveyor.operator.namespacedPeeringRules" -}}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}

{{/* Rules on cluster-scoped resources, in cluster-wide mode only. */}}
{{- define "conveyor.operator.clusterRules" -}}
# The replicas' peering record, cluster-wide.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
