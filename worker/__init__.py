"""The worker: the warm interpreter that imports and runs the user's handler, one event at a time."""
