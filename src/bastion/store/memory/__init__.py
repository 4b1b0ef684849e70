"""In-process implementations for the embedded default (one process)."""
