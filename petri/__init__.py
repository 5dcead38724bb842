"""petri: controlled deep-learning experiments on small image data sets."""

__version__ = "0.1.0"
