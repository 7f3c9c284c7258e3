"""`conveyor bench`: partial against sequential execution and the standard vLLM tool loop.

Workloads (``workloads/*.yaml``, or ``--workloads-dir``) replay scripted assistant turns through
the real engine with real tools; every system decodes the same tokens (``tokens``), systems are
interleaved per repetition (``runner``), each repetition gets its own ideal bound (``bound``,
``ideal``), and the summaries carry bootstrap intervals (``stats``, ``report``, ``table``).
``load`` runs open-loop Poisson arrivals. ``command`` holds the command line.
"""
