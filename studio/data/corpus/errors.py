"""The one error a converter raises: a file that could not be turned into text."""


class DocumentError(Exception):
    """A file that could not be turned into text; the message says why."""
