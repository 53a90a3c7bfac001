"""Tracking stage: gives people in consecutive frames a stable tracker_id (not yet built)."""
