"""The embedded sidecar's supervision without an engine: what is not restarted."""

from __future__ import annotations

import time

import pytest

from conveyor.runtime.sidecar_process import RESTARTS, EmbeddedSidecar


def test_a_sidecar_that_never_got_ready_is_an_error_not_restarted(tmp_path) -> None:
    config = tmp_path / "tools.yaml"
    config.write_text("tools: {python: {no_such_key: 1}}\n")
    restarts = RESTARTS._value.get()
    sidecar = EmbeddedSidecar(config=config, backoff_initial=0.01)
    try:
        with pytest.raises(RuntimeError, match="exited with code"):
            sidecar.wait_ready(timeout=60)
        time.sleep(0.2)  # a restart would come after 0.01 s
        assert sidecar.process.poll() is not None and sidecar.restarts == 0
        assert RESTARTS._value.get() == restarts
    finally:
        sidecar.stop()
