"""HTTP API resources."""
