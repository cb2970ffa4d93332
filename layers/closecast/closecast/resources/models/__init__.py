"""The /models/ resource."""
