"""The /model-inferences/ resource."""
