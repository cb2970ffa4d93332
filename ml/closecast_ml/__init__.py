"""closecast_ml: the numeric side of closecast (placeholder until the ML package lands)."""
