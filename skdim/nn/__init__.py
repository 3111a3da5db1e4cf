"""The PyTorch core of skdim: encoders, critics, MI bounds and priors.

Nothing in :mod:`skdim.nn` depends on scikit-learn; it can be used from plain
PyTorch code.
"""
