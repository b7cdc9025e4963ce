"""The one error type for bad user input: names file, dotted key, expected, found."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from a user file or flag. The CLI prints it and exits 2."""

    def __init__(self, file: str, key: str, expected: str, found: object):
        self.file = str(file)
        self.key = key
        self.expected = expected
        self.found = found
        # args are the constructor's: SimPy (and pickle, across worker processes) rebuild an
        # exception as type(exc)(*exc.args), which must give the same error back
        super().__init__(self.file, key, expected, found)

    def __str__(self) -> str:
        where = self.file if not self.key else f"{self.file}: {self.key}"
        return f"{where}: expected {self.expected}, found {_short(self.found)}"


def _short(found: object) -> str:
    text = found if isinstance(found, str) else repr(found)
    return text if len(text) <= 200 else text[:197] + "..."
