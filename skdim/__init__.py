"""skdim: Deep InfoMax (Hjelm et al., ICLR 2019) for scikit-learn."""

from . import metrics
from ._estimator import DeepInfoMax
from ._scorers import MINEScorer, NDMScorer

__version__ = "0.1.0"

__all__ = ["DeepInfoMax", "MINEScorer", "NDMScorer", "metrics", "__version__"]
