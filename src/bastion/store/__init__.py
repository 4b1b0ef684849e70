"""Stores: Protocols here, with SQL (SQLite, PostgreSQL), memory and Redis implementations."""
