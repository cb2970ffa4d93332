"""The no-Docker local cloud."""
