"""The warehouse schema: SQLAlchemy tables are the single source of its DDL and documentation."""

from models.tables import CHILD_TABLE_COLUMNS, metadata

__all__ = ["CHILD_TABLE_COLUMNS", "metadata"]
