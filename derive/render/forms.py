"""The forms an answer key comes in: what each prints besides the solutions.

``full`` restates every question and ends each problem with its evidence table; ``compact``
gives the solutions alone, one evidence line per problem and the tables in an instructor
appendix, for grading; ``student`` is for posting: no evidence and no instructor notes.
Templates read the form's flags and never its name, so a new form is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Form:
    """What a key of this form prints besides the solutions.

    Attributes
    ----------
    name : str
        The form's name (``--key NAME``, ``key = NAME`` in a set file).
    restate : bool
        Each problem's question is restated before its solution.
    extras : bool
        Optional material (vector forms, further experiments) is printed.
    evidence : str
        ``"table"``: each problem ends with its evidence table; ``"line"``: with one line
        summarising it (the tables go to the appendix); ``"none"``: no evidence.
    notes : bool
        Notes for instructors are printed: remarks on a declared source (a sample solution,
        the original handout's slips, reconstructions of damaged text) and critiques of a
        submission.
    """

    name: str
    restate: bool
    extras: bool
    evidence: str
    notes: bool

    @property
    def stem(self) -> str:
        """The output file's name without suffix."""
        return "answer-key" if self.name == "full" else f"answer-key-{self.name}"


FORMS: dict[str, Form] = {
    "full": Form("full", restate=True, extras=True, evidence="table", notes=True),
    "compact": Form("compact", restate=False, extras=False, evidence="line", notes=True),
    "student": Form("student", restate=True, extras=True, evidence="none", notes=False),
}
