"""The FastAPI edge gateway (REST and Server-Sent Events in front of the model services)."""
