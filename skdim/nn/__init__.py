"""The PyTorch core of skdim: encoders, critics, MI bounds and priors (no scikit-learn)."""
