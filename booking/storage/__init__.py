"""Storage: the tables, the engine's per-dialect set-up, and the SQL of each table
(SQLAlchemy Core, each statement built once).

May import config and metrics only; never Flask, never the layers above.
"""
