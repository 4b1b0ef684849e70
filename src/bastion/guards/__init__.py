"""Guards for the gateway and Bastion's own endpoints: rate limits, idempotency keys,
retries, circuit breakers, resource limits and pagination (docs/guards.md)."""
