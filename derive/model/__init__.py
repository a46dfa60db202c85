"""Models written as text: a grammar for a model's equations, and the engine's data built
from the parse tree (``derive.model.equations``).  Nothing here evaluates user text."""
