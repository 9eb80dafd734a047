"""The model services behind the gateway: their gRPC clients, every backend address, its
health and the versions it lists, and the choice of one backend per call."""
