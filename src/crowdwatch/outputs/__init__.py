"""Outputs stage: sinks that take every analysed frame (metrics, events)."""
