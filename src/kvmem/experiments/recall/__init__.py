"""Free recall with a drifting temporal context as the key."""
