"""The HTTP routes: thin handlers, the bodies they read, the JSON they answer, the
refusals each may answer with, the OpenAPI shapes FastAPI cannot infer, and what a
handler gets from FastAPI's dependencies (``deps``: the state, the caller with a role)."""
