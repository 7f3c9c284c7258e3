"""Conveyor's runtime: vLLM, streaming tool-call parsing, the scheduler and the server."""
