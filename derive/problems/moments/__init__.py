"""Random variables defined in a set file (``kind = "moments"``): the mean and variance of
quantities built from them, derived from the variables' distributions (``algebra``) and
checked by enumeration, integration and sampling of the equations' parse trees
(``claims``); ``problem`` makes the problem class of a table."""

from derive.problems.moments.problem import MomentsProblem, moments_problem

__all__ = ["MomentsProblem", "moments_problem"]
