"""Models written as text: grammars for a recurrent cell's equations
(``derive.model.equations``) and a map's updates (``derive.model.maps``), and the engine's
data built from their parse trees.  Nothing here evaluates user text."""


def build_grammars() -> None:
    """Build both grammars' parse tables now (each is built once per process, on first
    use): a build's forkserver does it so that no worker pays the 25 ms again."""
    from derive.model import equations, maps

    equations._parser()
    maps._parser()
