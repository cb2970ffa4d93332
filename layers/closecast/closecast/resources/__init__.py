"""The HTTP API's resources, one folder each: `routes.py` (the Router), `sql.py` (all SQL on its table) and
`schemas.py` (its pydantic models)."""
