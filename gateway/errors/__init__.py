"""How the gateway says no: the refusals it answers with (each with its HTTP status and
error code), the one error envelope, the table from a backend's gRPC status to HTTP, the
exception handlers, and validation problems told in the gateway's own words."""
