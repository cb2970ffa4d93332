"""Synthetic market and replay."""
