"""The HTTP routes: thin handlers, the bodies they read, the JSON they answer, the
refusals each may answer with, and the OpenAPI shapes FastAPI cannot infer."""
