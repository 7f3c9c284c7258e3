"""The ConveyorService CustomResourceDefinition, generated from the spec types.

`manifests/crd.yaml` is this module's output (`conveyor-operator crd`); a test regenerates it and
fails when the committed file is stale.
"""

from __future__ import annotations

from typing import Any

import yaml

from conveyor.operator._schema import Schema, schema_of
from conveyor.operator.spec import (
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    ConveyorServiceSpec,
)

CONDITION_TYPES = ["Ready", "Progressing", "Degraded"]

# Every child's name derives from the ConveyorService's: the Service needs a DNS-1035 label and
# the longest suffix is "-tools" (6 characters) on a 63-character label.
MAX_NAME_LENGTH = 57
_NAME_RULES = [
    (
        f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        f"metadata.name must be at most {MAX_NAME_LENGTH} characters "
        "(the Service and ConfigMap names are made from it)",
    ),
    (
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must start with a letter and hold only lower-case letters, digits and '-' "
        "(it names a Service)",
    ),
]


def _condition_schema() -> Schema:
    return {
        "type": "object",
        "description": "One condition: Ready, Progressing or Degraded.",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string", "enum": CONDITION_TYPES, "description": "Which condition."},
            "status": {
                "type": "string",
                "enum": ["True", "False", "Unknown"],
                "description": "Whether it holds.",
            },
            "reason": {"type": "string", "description": "Why, in one CamelCase word."},
            "message": {"type": "string", "description": "Why, for a person; what to change."},
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "minimum": 0,
                "description": "The spec generation the condition was worked out for.",
            },
            "lastTransitionTime": {
                "type": "string",
                "format": "date-time",
                "description": "When the status last changed.",
            },
        },
    }


def status_schema() -> Schema:
    return {
        "type": "object",
        "description": "What the operator last saw of this service.",
        "properties": {
            "conditions": {
                "type": "array",
                "description": "Ready (serves the current spec on every desired replica), "
                "Progressing (a rollout is under way) and Degraded (something needs a change).",
                "items": _condition_schema(),
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "The spec generation this status was worked out for.",
            },
            "replicas": {"type": "integer", "description": "Pods of the Deployment, old included."},
            "readyReplicas": {"type": "integer", "description": "Pods ready to serve."},
            "readyOfDesired": {
                "type": "string",
                "description": "Ready pods / desired pods, as `kubectl get` shows them.",
            },
            "selector": {"type": "string", "description": "Label selector of the pods."},
            "endpoint": {"type": "string", "description": "OpenAI-compatible base URL."},
            "images": {
                "type": "object",
                "description": "The images in use: the spec's, or the operator's defaults.",
                "properties": {
                    "runtime": {"type": "string", "description": "The runtime container's."},
                    "tools": {"type": "string", "description": "The tools container's."},
                },
            },
        },
    }


def openapi_schema() -> Schema:
    """The structural schema of the whole object (what `openAPIV3Schema` holds)."""
    return {
        "type": "object",
        "description": "A served model with its tools, run by the Conveyor operator.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "conveyor.dev/v1alpha1."},
            "kind": {"type": "string", "description": "ConveyorService."},
            "metadata": {"type": "object", "description": "The object's metadata."},
            "spec": schema_of(ConveyorServiceSpec),
            "status": status_schema(),
        },
        "x-kubernetes-validations": [{"rule": r, "message": m} for r, m in _NAME_RULES],
    }


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "conveyor",
                "app.kubernetes.io/part-of": "conveyor",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["conveyor"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Reason",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
                        },
                        {
                            "name": "Replicas",
                            "type": "string",
                            "description": "Ready / desired pods.",
                            "jsonPath": ".status.readyOfDesired",
                        },
                        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


_HEADER = "# Generated by `conveyor-operator crd` from conveyor/operator/spec.py. Do not edit.\n"


def crd_yaml() -> str:
    return _HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)
