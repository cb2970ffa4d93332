"""closecast: predicting Nasdaq closing-auction moves, serverless."""

__version__ = "0.1.0"
