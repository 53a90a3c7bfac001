"""Analytics stage: what the people found in a frame mean for zones (and, later, lines)."""
