"""Data access through the RDS Data API."""
