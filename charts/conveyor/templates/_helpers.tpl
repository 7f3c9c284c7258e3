{{/*
Helpers are named conveyor.<component>.<thing>; chart-wide ones conveyor.<thing>.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "conveyor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name prefix of every object: <release>-<chart>, or the release name when it already
contains the chart name. Truncated to 63 characters because some fields are DNS labels.
*/}}
{{- define "conveyor.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "conveyor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "conveyor.labels" -}}
helm.sh/chart: {{ include "conveyor.chart" . }}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: conveyor
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
One of the project's images: its override, else <registry>/<name>:<tag><suffix>, with the tag
defaulting to the chart's appVersion. Call with (list $ "operator" "conveyor-operator" "").
*/}}
{{- define "conveyor.image" -}}
{{- $root := index . 0 }}
{{- $images := $root.Values.images }}
{{- $override := index $images.overrides (index . 1) }}
{{- $tag := default $root.Chart.AppVersion $images.tag }}
{{- default (printf "%s/%s:%s%s" (trimSuffix "/" $images.registry) (index . 2) $tag (index . 3)) $override }}
{{- end }}

{{/* The namespace the operator watches; empty means every namespace. */}}
{{- define "conveyor.operator.watchNamespace" -}}
{{- if .Values.operator.watchReleaseNamespace }}
{{- .Release.Namespace }}
{{- else }}
{{- .Values.operator.watchNamespace }}
{{- end }}
{{- end }}

{{/* "true" in namespaced mode (a Role, one watched namespace), "" otherwise. */}}
{{- define "conveyor.operator.namespaced" -}}
{{- if include "conveyor.operator.watchNamespace" . }}true{{ end }}
{{- end }}

{{- define "conveyor.operator.fullname" -}}
{{- printf "%s-operator" (include "conveyor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conveyor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "conveyor.operator.labels" -}}
{{ include "conveyor.labels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "conveyor.operator.image" -}}
{{- include "conveyor.image" (list . "operator" "conveyor-operator" "") }}
{{- end }}

{{/* The kopf peering object the operator replicas share. */}}
{{- define "conveyor.operator.peering" -}}
{{- include "conveyor.operator.fullname" . }}
{{- end }}

{{- define "conveyor.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conveyor.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "conveyor.dashboards.fullname" -}}
{{- printf "%s-dashboards" (include "conveyor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.dashboards.namespace" -}}
{{- default .Release.Namespace .Values.dashboards.namespace }}
{{- end }}

{{- define "conveyor.dashboards.labels" -}}
{{ include "conveyor.labels" . }}
app.kubernetes.io/component: dashboards
{{- end }}

{{- define "conveyor.alerts.fullname" -}}
{{- printf "%s-alerts" (include "conveyor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conveyor.alerts.labels" -}}
{{ include "conveyor.labels" . }}
app.kubernetes.io/component: alerts
{{- end }}
