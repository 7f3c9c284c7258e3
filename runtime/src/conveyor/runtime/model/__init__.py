"""The embedded models: the tiny one built by the project itself, offline and deterministic,
and SmolLM2-135M-Instruct converted from its pinned PyPI wheel."""

from conveyor.runtime.model.manifest import MANIFEST_NAME, ModelError, check_model
from conveyor.runtime.model.smollm2 import DEFAULT_SMOLLM2_DIR, SmolLM2Recipe, build_smollm2
from conveyor.runtime.model.tiny import DEFAULT_MODEL_DIR, TinyModelSpec, build_tiny

__all__ = [
    "DEFAULT_MODEL_DIR",
    "DEFAULT_SMOLLM2_DIR",
    "MANIFEST_NAME",
    "ModelError",
    "SmolLM2Recipe",
    "TinyModelSpec",
    "build_smollm2",
    "build_tiny",
    "check_model",
]
