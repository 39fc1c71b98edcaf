"""The warehouse schema: SQLAlchemy tables are the single source of its DDL and documentation."""

from models import marts
from models.tables import CHILD_TABLE_COLUMNS, metadata

MART_TABLES = tuple(t.name for t in marts.MARTS)

__all__ = ["CHILD_TABLE_COLUMNS", "MART_TABLES", "metadata"]
