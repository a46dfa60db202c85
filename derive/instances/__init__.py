"""Random numeric instances of a problem's model, written without the derivation.

Each module builds instances (weights, inputs, states) of one model and runs a plain
forward pass on them; derivatives of that pass come from the routes of
``derive.verify.routes`` (complex step, central differences), never from the engine, so
they are an independent reference for a problem's claims.
"""
