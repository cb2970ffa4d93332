"""closecast tools: CLI, local cloud, market generator and replay (never deployed)."""
