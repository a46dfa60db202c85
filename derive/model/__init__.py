"""Models written as text: grammars for a recurrent cell's equations
(``derive.model.equations``) and a map's updates (``derive.model.maps``), and the engine's
data built from their parse trees.  Nothing here evaluates user text."""
