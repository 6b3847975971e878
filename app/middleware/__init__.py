"""HTTP plumbing around every request: admission, deadlines, rate limits, HTTP semantics,
request ids, logs and metrics."""
