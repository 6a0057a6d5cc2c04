"""Storage access: SDK clients, timeouts and retries, bandwidth, adaptive concurrency, fast paths."""
