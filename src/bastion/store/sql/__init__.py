"""Durable data through SQLAlchemy (async): SQLite embedded, PostgreSQL scaled."""
