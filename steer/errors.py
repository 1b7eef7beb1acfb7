"""The one exception type for mistakes a user can fix (bad name, bad path, missing file).

The CLI turns it into a single line and exit status 2; anything else is a bug and keeps
its traceback.
"""


class SteerError(Exception):
    """A user-facing error: its message says what is wrong and what to do."""
