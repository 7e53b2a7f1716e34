"""One exception type for every user-facing failure.

The CLI prints ``HarnessError`` as a single line (``error: <what>. <fix>``) and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A failure caused by input the user controls (a name, a file, a config, the environment)."""

    exit_code = 2

    def __init__(self, what: str, fix: str | None = None):
        self.what = what.rstrip(".")
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.what + "."
        if self.fix:
            text += " " + self.fix.rstrip(".") + "."
        return " ".join(text.split())


class UnknownNameError(HarnessError):
    """An unknown model, method, benchmark or data set name."""

    def __init__(self, kind: str, name: str, known: list[str], fix: str | None = None):
        self.kind, self.name, self.known = kind, name, sorted(known)
        listed = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} '{name}'", fix or f"choose one of: {listed}")
