"""`conveyor soak`: mixed traffic against a server for minutes or hours, and what was lost.

``mix`` holds the kinds of request and the answer each must get, ``traffic`` sends one and
classifies how it ended, ``processes`` watches the server's processes, ``report`` builds the
summary and the verdict, ``command`` holds the command line and the run.
"""
