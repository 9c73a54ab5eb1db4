"""Plain-SQL migrations, applied in order by `zhongdu.storage.migrate` and recorded.

`NNNN_name.sql` runs everywhere; `NNNN_name.timescale.sql` runs after it when the TimescaleDB
extension is present, and `NNNN_name.plain.sql` otherwise (the plain-PostgreSQL equivalents, so
that every query works on both). `NNNN_name.py` with `apply(conn, timescale)` is for data
migrations that load a versioned file.
"""
