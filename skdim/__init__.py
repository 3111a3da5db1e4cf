"""skdim: Deep InfoMax (Hjelm et al., ICLR 2019) for scikit-learn."""

from ._estimator import DeepInfoMax

__version__ = "0.1.0"

__all__ = ["DeepInfoMax", "__version__"]
