"""`conveyor bench`: partial against sequential execution and the standard vLLM tool loop.

Workloads (``workloads/*.yaml``) replay scripted assistant turns through the real engine with
real tools; the ideal bound comes from each round's decode timeline and each unit's tool time
measured alone. ``command`` holds the command line; ``runner`` the orchestration.
"""
