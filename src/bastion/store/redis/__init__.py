"""Redis implementations for many processes sharing state."""
