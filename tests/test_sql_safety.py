"""No SQL built by string formatting: every query handed to psycopg is a literal, or composed with
`psycopg.sql` (identifiers quoted, values as parameters). An AST scan of the shipped code.

Flagged: an f-string, `%` formatting, `.format()` or `+` concatenation with a non-literal, passed as
the query of `execute`/`executemany`/`copy` or of `sql.SQL(...)`, directly or through a local name.
The scanner's own test shows it catches each form.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("zhongdu", "ingest", "api", "coverage", "simulators", "infra/migrations", "benchmarks")
QUERY_CALLS = {"execute", "executemany", "copy", "_all", "_one", "SQL"}


def _formatted(node: ast.AST) -> bool:
    """A string built at run time from something other than literals."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return (
            isinstance(node.left, ast.Constant | ast.JoinedStr) and isinstance(node.left.value, str)
            if isinstance(node.left, ast.Constant)
            else True
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)) and (
            _stringy(node.left) or _stringy(node.right)
        )
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join")
    ):
        return isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str)
    return False


def _stringy(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(node, ast.JoinedStr)


_SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|WITH)\b.*\b(FROM|INTO|SET|AS|VALUES)\b", re.I | re.S
)


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + " " + _literal_text(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return _literal_text(node.func.value)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def violations(source: str, filename: str = "<string>") -> list[str]:
    tree = ast.parse(source, filename)
    found: list[str] = []
    # anywhere: a formatted string whose text reads as SQL (built up in a list, returned, ...)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr | ast.BinOp | ast.Call) and _formatted(node):
            if _SQL_TEXT.search(_literal_text(node)):
                found.append(f"{filename}:{node.lineno}: SQL text built by string formatting")
    for scope in [
        tree,
        *[n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)],
    ]:
        tainted: set[str] = set()
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and _formatted(node.value):
                tainted |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in QUERY_CALLS or not node.args:
                continue
            # `execute(conn, query)` helpers take the connection first
            query = node.args[1] if name in ("_all", "_one") and len(node.args) > 1 else node.args[0]
            if _formatted(query) or (isinstance(query, ast.Name) and query.id in tainted):
                found.append(f"{filename}:{node.lineno}: {name}() gets a query built by string formatting")
    return sorted(set(found))


def test_the_scanner_catches_each_form() -> None:
    bad = [
        'cur.execute(f"SELECT * FROM t WHERE id = {x}")',
        'conn.execute("SELECT * FROM t WHERE id = %s" % x)',
        'conn.execute("SELECT * FROM {}".format(table))',
        'conn.execute("SELECT * FROM " + table)',
        'q = f"DELETE FROM {t}"\nconn.execute(q)',
        'sql.SQL(f"SELECT {col} FROM t")',
        '_all(conn, f"SELECT {c} FROM t")',
        'counts.append(f"(SELECT count(*) FROM {cte})")',
        'q = "WITH " + ",".join(ctes) + " SELECT count(*) FROM " + x',
    ]
    for snippet in bad:
        assert violations(snippet), snippet
    good = [
        'conn.execute("SELECT * FROM t WHERE id = %s", (x,))',
        'conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t)))',
        'conn.execute("SELECT 1 " "FROM t")',
        'print(f"{x}")',
        'log.info(f"selected {n} rows")',
    ]
    for snippet in good:
        assert not violations(snippet), snippet


def test_no_sql_is_built_by_string_formatting() -> None:
    found: list[str] = []
    files = [
        p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if "node_modules" not in p.parts
    ]
    assert len(files) > 50  # the scan really ran over the code
    for path in files:
        found += violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "\n".join(found)
