"""The one error type of the stack: its message says what failed and what to do."""


class StackError(RuntimeError):
    """A part of the embedded stack cannot start, stop or be reached; the message says what to do."""
