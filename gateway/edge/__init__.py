"""What every HTTP request passes: the outermost middleware (request id, trace context,
body limit, security headers, access log, metrics), the record of the request being
handled, the caller's address, and the drain on shutdown."""
