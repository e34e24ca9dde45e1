"""For tests that interrupt a child process with SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` of a child a test interrupts: SIGINT back to its default action.

    A non-interactive shell starts a background job (`pytest ... &`) with SIGINT ignored,
    every child inherits that, and Python installs no KeyboardInterrupt handler where SIGINT
    is ignored at start: the child would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
