"""Device trust: evidence that a request comes from a genuine instance of the app."""
