"""PixelCNN against MDRNN as autoregressive image models (CSE 891 homework 3, question 4).

``model`` holds the sizes, the instantiated models and raster order; ``problem`` the fits
and the key's data; ``results`` the results built from them; ``claims`` and ``fields``
the independent checks.
"""

from derive.problems.pixelcnn_mdrnn.model import EXAMPLE, H, W, c, col, d, k, mask, row
from derive.problems.pixelcnn_mdrnn.problem import PixelCNNMDRNN

__all__ = ["EXAMPLE", "H", "PixelCNNMDRNN", "W", "c", "col", "d", "k", "mask", "row"]
