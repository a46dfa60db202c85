"""Feed-forward graphs over matrices: shapes, values and gradients by reverse-mode rules.

``Graph`` holds the model (rows are examples: ``X W + b`` with X of N×D); ``adjoints``
derives every node's adjoint in matrix notation, each in the form a key writes it;
``derive.feedforward.numeric`` evaluates a graph and any derived formula on arrays.
"""

from derive.feedforward.graph import Graph, Node, adjoints

__all__ = ["Graph", "Node", "adjoints"]
