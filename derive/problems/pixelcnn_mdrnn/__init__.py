from derive.problems.pixelcnn_mdrnn.problem import *  # noqa
from derive.problems.pixelcnn_mdrnn.problem import PixelCNNMDRNN  # noqa
