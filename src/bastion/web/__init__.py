"""ASGI routes for each area, and the middleware every response passes through."""
