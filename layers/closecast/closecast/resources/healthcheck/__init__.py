"""The /healthcheck/ resource."""
