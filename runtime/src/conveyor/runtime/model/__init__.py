"""The embedded default model: built by the project itself, offline and deterministic."""

from conveyor.runtime.model.tiny import (
    DEFAULT_MODEL_DIR,
    MANIFEST_NAME,
    ModelError,
    TinyModelSpec,
    build_tiny,
    check_model,
)

__all__ = [
    "DEFAULT_MODEL_DIR",
    "MANIFEST_NAME",
    "ModelError",
    "TinyModelSpec",
    "build_tiny",
    "check_model",
]
