"""closecast_ml: everything numeric (market frames, the Kaggle loader, targets, features, training, prediction,
backtest). Shared by the container images, the tools and the tests; never imported by the zip layer."""

from closecast import __version__

__all__ = ["__version__"]
