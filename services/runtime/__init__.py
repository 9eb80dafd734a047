"""The runtime every model service shares: settings, batching, model repository, errors,
metrics, health and the gRPC server's life cycle."""
