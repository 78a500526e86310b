"""Check a dump's SQL before a restore runs it: only what a dump of our own holds may pass.

A backup is authenticated before it gets here (see `mysql_backups`); this scan
is the second line. It reads the SQL as the `mysql` client and the server
would, statement by statement (strings, quoted names, comments, versioned
`/*!NNNNN ... */` comments, whose text the server runs, and `DELIMITER`), and
refuses the whole dump when any statement:

- is not one a dump holds: the first word must be SET, USE, CREATE, ALTER,
  DROP, INSERT, LOCK or UNLOCK, and CREATE/ALTER/DROP must name a database,
  table, view, trigger, function, procedure, event or index;
- names a database other than the backup's own in USE or CREATE/ALTER/DROP
  DATABASE, or qualifies a name with `mysql`, `sys`, `performance_schema` or
  `information_schema`;
- anywhere, even inside a routine, trigger or event body: GRANT, REVOKE,
  CREATE/ALTER/DROP/RENAME USER, CREATE/DROP ROLE, SET ROLE, SET DEFAULT
  ROLE, SET PASSWORD, INSTALL/UNINSTALL PLUGIN or COMPONENT, SONAME,
  SHUTDOWN, RESTART, GLOBAL, PERSIST, PERSIST_ONLY, @@global./@@persist.
  variables, LOAD DATA/XML, INFILE, OUTFILE, DUMPFILE, DATA/INDEX DIRECTORY,
  PREPARE, EXECUTE, DEALLOCATE;
- names a DEFINER other than a relation user of this charm (`relation-<n>`@`%`),
  or creates a routine, trigger or event with no DEFINER (it would belong to
  the restore account, which is dropped afterwards); a view without DEFINER
  passes only as mysqldump's placeholder, which selects constants only;
- switches SQL_MODE to a mode that changes how quotes and backslashes read
  (ANSI, ANSI_QUOTES, NO_BACKSLASH_ESCAPES and the modes that imply them), or
  the client character set to one whose multi-byte characters can end in a
  backslash (big5, cp932, gbk, gb18030, sjis), so this reading stays the
  server's; a top-level SET may not call functions;
- holds a backslash outside a string (the `mysql` client reads one as a
  command of its own, a shell escape among them),
  a backslash inside a backquoted name, or a DELIMITER other than `;` and `;;`.

Refusing is cheap to undo (restore by hand, see the README); running a forged
statement as a privileged account is not. The scan reads the file once, in
blocks, so memory stays flat whatever the dump's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

SYSTEM_SCHEMAS = frozenset({"mysql", "sys", "performance_schema", "information_schema"})
# The accounts the charm creates for its `database` relations (see charm.py).
ALLOWED_DEFINER_USER = re.compile(r"relation-[0-9]{1,10}")
ALLOWED_DEFINER_HOST = "%"

_BLOCK = 1024 * 1024
_KEEP_TOKENS = 64  # of an INSERT: the target; every token still gets the stream checks

_FIRST_WORDS = frozenset({"SET", "USE", "CREATE", "ALTER", "DROP", "INSERT", "LOCK", "UNLOCK"})
_OBJECT_KINDS = frozenset(
    {"DATABASE", "SCHEMA", "TABLE", "VIEW", "TRIGGER", "FUNCTION", "PROCEDURE", "EVENT", "INDEX"}
)
_REFUSED_KINDS = frozenset(
    {
        "USER",
        "ROLE",
        "SERVER",
        "TABLESPACE",
        "LOGFILE",
        "INSTANCE",
        "UNDO",
        "RESOURCE",
        "SPATIAL",
        "SEQUENCE",
        "LIBRARY",
        "PACKAGE",
    }
)
_NEEDS_DEFINER = frozenset({"TRIGGER", "FUNCTION", "PROCEDURE", "EVENT"})
_REFUSED_WORDS = {
    "GRANT": "GRANT",
    "REVOKE": "REVOKE",
    "SHUTDOWN": "SHUTDOWN",
    "RESTART": "RESTART",
    "GLOBAL": "a global setting",
    "PERSIST": "a persisted setting",
    "PERSIST_ONLY": "a persisted setting",
    "SONAME": "a server plugin (SONAME)",
    "INFILE": "reading a server file (INFILE)",
    "OUTFILE": "writing a server file (OUTFILE)",
    "DUMPFILE": "writing a server file (DUMPFILE)",
    "DIRECTORY": "a DATA or INDEX DIRECTORY",
    "PREPARE": "dynamic SQL (PREPARE)",
    "EXECUTE": "dynamic SQL (EXECUTE)",
    "DEALLOCATE": "dynamic SQL (DEALLOCATE)",
}
_REFUSED_PAIRS = {
    ("CREATE", "USER"): "CREATE USER",
    ("ALTER", "USER"): "ALTER USER",
    ("DROP", "USER"): "DROP USER",
    ("RENAME", "USER"): "RENAME USER",
    ("CREATE", "ROLE"): "CREATE ROLE",
    ("DROP", "ROLE"): "DROP ROLE",
    ("SET", "ROLE"): "SET ROLE",
    ("DEFAULT", "ROLE"): "SET DEFAULT ROLE",
    ("SET", "PASSWORD"): "SET PASSWORD",
    ("INSTALL", "PLUGIN"): "INSTALL PLUGIN",
    ("INSTALL", "COMPONENT"): "INSTALL COMPONENT",
    ("UNINSTALL", "PLUGIN"): "UNINSTALL PLUGIN",
    ("UNINSTALL", "COMPONENT"): "UNINSTALL COMPONENT",
    ("INSTALL", "SONAME"): "INSTALL SONAME",
    ("LOAD", "DATA"): "LOAD DATA",
    ("LOAD", "XML"): "LOAD XML",
}
_REFUSED_VARIABLE_PREFIXES = ("@@GLOBAL.", "@@PERSIST.", "@@PERSIST_ONLY.")
_REFUSED_SQL_MODES = frozenset(
    {
        "ANSI",
        "ANSI_QUOTES",
        "NO_BACKSLASH_ESCAPES",
        "DB2",
        "MAXDB",
        "MSSQL",
        "ORACLE",
        "POSTGRESQL",
    }
)
_REFUSED_CHARSETS = frozenset({"BIG5", "CP932", "GBK", "GB18030", "SJIS"})
_DELIMITERS = (b";", b";;")

# One token at the start of the text (bytes). Each alternative that may run to
# the end of the block without being complete ends in `\Z`-able form; the
# reader then fetches more and tries again.
_TOKEN = re.compile(
    rb"""
    (?P<space>\s+)
  | (?P<line_comment>(?:\#|--(?=[\s\x00-\x1f]|\Z))[^\n]*(?:\n|\Z))
  | (?P<open_exec>/\*M?!\d*)
  | (?P<comment>/\*(?:[^*]|\*(?!/))*(?:\*/|\*?\Z))
  | (?P<close_exec>\*/)
  | (?P<string>'[^'\\]*(?:(?:\\[\s\S]|'')[^'\\]*)*(?:'|\\?\Z)
              |"[^"\\]*(?:(?:\\[\s\S]|"")[^"\\]*)*(?:"|\\?\Z))
  | (?P<ident>`[^`]*(?:``[^`]*)*(?:`|\Z))
  | (?P<variable>@@?[A-Za-z0-9_$.]+)
  | (?P<word>[A-Za-z0-9_$\x80-\xff]+)
  | (?P<punct>[\s\S])
    """,
    re.VERBOSE,
)


class DumpRefusedError(Exception):
    """The dump holds something a restore must not run; the message says what and where."""


class _Statement:
    """The tokens of one statement as the server would read them, and what they hold."""

    def __init__(self, line: int):
        self.line = line
        self.tokens: list[tuple[str, str]] = []  # (kind, text): word upper, ident/string raw
        self.count = 0
        self.previous: tuple[str, str] | None = None
        self.before_previous: tuple[str, str] | None = None

    def add(self, kind: str, text: str, line: int) -> None:
        if not self.count:
            self.line = line
        self.count += 1
        # Only an INSERT's rows can make a statement huge; nothing after its
        # first tokens matters beyond the checks made on every token.
        if len(self.tokens) < _KEEP_TOKENS or self.tokens[0] != ("word", "INSERT"):
            self.tokens.append((kind, text))
        self._check_stream(kind, text)
        self.before_previous, self.previous = self.previous, (kind, text)

    def refuse(self, what: str) -> DumpRefusedError:
        return DumpRefusedError(f"the dump holds {what} (statement at line {self.line})")

    def _check_stream(self, kind: str, text: str) -> None:
        """Checks that hold anywhere in a statement, however long."""
        if kind == "word":
            if text in _REFUSED_WORDS:
                raise self.refuse(_REFUSED_WORDS[text])
            if self.previous and self.previous[0] == "word":
                pair = (self.previous[1], text)
                if pair in _REFUSED_PAIRS:
                    raise self.refuse(_REFUSED_PAIRS[pair])
        elif kind == "variable" and text.startswith(_REFUSED_VARIABLE_PREFIXES):
            raise self.refuse(f"a global setting ({text})")
        # `schema`.`name`: the token before a dot names a schema, or a table
        # (or alias) in `table`.`column`; refuse the system schemas either way.
        if (
            kind in ("word", "ident", "string")
            and self.previous == ("punct", ".")
            and self.before_previous
            and self.before_previous[0] in ("word", "ident", "string")
            and self.before_previous[1].lower() in SYSTEM_SCHEMAS
        ):
            raise self.refuse(f"a reference to the system schema `{self.before_previous[1]}`")


def scan_dump(path: str, databases: Iterable[str]) -> int:
    """Check the dump at `path`, which backs up `databases`; return how many statements it holds.

    Raises DumpRefusedError naming the first statement refused.
    """
    allowed = frozenset(databases)
    count = 0
    with open(path, "rb") as source:
        for statement in _statements(source):
            _check_statement(statement, allowed)
            count += 1
    return count


def _read_blocks(source) -> Iterator[bytes]:
    while block := source.read(_BLOCK):
        yield block


def _statements(source) -> Iterator[_Statement]:  # noqa: C901 - one lexer, kept in one place
    """Split the dump into statements as the `mysql` client does, tokens as the server reads."""
    blocks = _read_blocks(source)
    buffer = b""
    position = 0
    at_eof = False
    line = 1
    delimiter = b";"
    in_exec_comment = False
    statement = _Statement(line)
    at_line_start = True

    def refill() -> bool:
        nonlocal buffer, position, at_eof
        if at_eof:
            return False
        block = next(blocks, None)
        if block is None:
            at_eof = True
            return False
        buffer = buffer[position:] + block
        position = 0
        return True

    while True:
        if len(buffer) - position < 16:
            refill()  # so a delimiter or a token never straddles two blocks unseen
        if position >= len(buffer):
            break
        # The client's DELIMITER command: at the start of a statement, on a line of its own.
        if at_line_start and statement.count == 0 and not in_exec_comment:
            end = buffer.find(b"\n", position)
            while end < 0 and refill():
                end = buffer.find(b"\n", position)
            text = buffer[position : end if end >= 0 else len(buffer)]
            stripped = text.strip()
            if stripped[:10].upper() == b"DELIMITER " or stripped.upper() == b"DELIMITER":
                new = stripped[10:].strip()
                if new not in _DELIMITERS:
                    raise DumpRefusedError(
                        f"the dump sets an unexpected delimiter {new[:20]!r} (line {line})"
                    )
                delimiter = new
                position = end + 1 if end >= 0 else len(buffer)
                line += 1
                statement = _Statement(line)
                continue
        at_line_start = False
        if buffer.startswith(delimiter, position) and not in_exec_comment:
            position += len(delimiter)
            if statement.count:
                yield statement
            statement = _Statement(line)
            continue
        match = _TOKEN.match(buffer, position)
        assert match is not None  # the last alternative takes any byte
        kind = match.lastgroup
        token = match.group()
        if match.end() == len(buffer) and not at_eof and kind != "punct":
            # The token may go on in the next block: read more and look again.
            if refill():
                continue
        position = match.end()
        newlines = token.count(b"\n")
        line += newlines
        if kind == "space":
            at_line_start = newlines > 0
            continue
        if kind == "line_comment":
            at_line_start = True
            continue
        if kind == "comment":
            if not token.endswith(b"*/") or len(token) < 4:
                raise DumpRefusedError(f"the dump has an unterminated comment (line {line})")
            continue
        if kind == "open_exec":
            if in_exec_comment:
                raise DumpRefusedError(f"the dump nests versioned comments (line {line})")
            if token == b"/*M!999999":
                # MariaDB's dump tool opens with a line no server version runs
                # (it switches its own client to sandbox mode): a comment.
                end = buffer.find(b"*/", position)
                while end < 0 and refill():
                    end = buffer.find(b"*/", position)
                if end < 0:
                    raise DumpRefusedError(f"the dump has an unterminated comment (line {line})")
                line += buffer.count(b"\n", position, end)
                position = end + 2
                continue
            in_exec_comment = True
            continue
        if kind == "close_exec":
            if not in_exec_comment:
                raise DumpRefusedError(f"the dump has a stray */ (line {line})")
            in_exec_comment = False
            continue
        if kind == "string":
            quote = token[:1]
            if len(token) < 2 or not token.endswith(quote) or _ends_escaped(token):
                raise DumpRefusedError(f"the dump has an unterminated string (line {line})")
            statement.add("string", _unquote_string(token), line)
            continue
        if kind == "ident":
            if len(token) < 2 or not token.endswith(b"`"):
                raise DumpRefusedError(f"the dump has an unterminated name (line {line})")
            if b"\\" in token:
                raise statement.refuse("a backslash in a quoted name")
            statement.add(
                "ident", token[1:-1].replace(b"``", b"`").decode("utf-8", "replace"), line
            )
            continue
        if kind == "variable":
            statement.add("variable", token.decode("ascii", "replace").upper(), line)
            continue
        if kind == "word":
            statement.add("word", token.decode("utf-8", "replace").upper(), line)
            continue
        # punct
        if token == b"\\":
            raise statement.refuse("a backslash outside a string (a mysql client command)")
        statement.add("punct", token.decode("latin-1"), line)
    if in_exec_comment:
        raise DumpRefusedError("the dump ends inside a versioned comment")
    if statement.count:
        yield statement


def _ends_escaped(token: bytes) -> bool:
    """Whether the closing quote of a string token is really an escaped quote."""
    backslashes = len(token) - 1 - len(token[:-1].rstrip(b"\\"))
    return backslashes % 2 == 1


def _unquote_string(token: bytes) -> str:
    quote = token[:1]
    body = token[1:-1].replace(quote + quote, quote)
    return re.sub(rb"\\([\s\S])", rb"\1", body).decode("utf-8", "replace")


def _words(tokens: list[tuple[str, str]]) -> list[str]:
    return [text for kind, text in tokens if kind == "word"]


def _check_statement(statement: _Statement, databases: frozenset[str]) -> None:
    tokens = statement.tokens
    first_kind, first = tokens[0]
    if first_kind != "word" or first not in _FIRST_WORDS:
        raise statement.refuse(f"a statement a dump does not hold ({first[:40]!r})")
    if first == "USE":
        _check_database(statement, tokens[1:2], databases)
    elif first == "SET":
        _check_set(statement)
    elif first in ("CREATE", "ALTER", "DROP"):
        _check_object_statement(statement, databases)
    _check_definers(statement)


def _name_of(token: tuple[str, str] | None) -> str | None:
    if token is None or token[0] not in ("word", "ident", "string"):
        return None
    return token[1]


def _check_database(
    statement: _Statement, tokens: list[tuple[str, str]], databases: frozenset[str]
) -> None:
    token = tokens[0] if tokens else None
    name = _name_of(token)
    if name is None:
        raise statement.refuse("a database statement without a database name")
    if token and token[0] == "word":
        # Bare words are kept upper-cased; the account's rights are exact anyway.
        known = name.lower() in {d.lower() for d in databases}
    else:
        known = name in databases
    if not known:
        raise statement.refuse(f"a statement on database {name!r}, which is not in this backup")


def _check_set(statement: _Statement) -> None:
    for kind, text in statement.tokens:
        if kind == "punct" and text == "(":
            raise statement.refuse("a function call in a SET statement")
        value = text.upper()
        if kind == "string":
            modes = {part.strip() for part in value.split(",")}
            if modes & _REFUSED_SQL_MODES:
                raise statement.refuse(f"an SQL mode that changes quoting ({text[:60]!r})")
        if kind in ("string", "word") and value in _REFUSED_CHARSETS:
            raise statement.refuse(f"the client character set {text!r}")
        if kind == "word" and value in _REFUSED_SQL_MODES:
            raise statement.refuse(f"an SQL mode that changes quoting ({text!r})")


def _check_object_statement(statement: _Statement, databases: frozenset[str]) -> None:
    tokens = statement.tokens
    for index, (kind, text) in enumerate(tokens[1:], start=1):
        if kind != "word":
            continue
        if text in _REFUSED_KINDS:
            raise statement.refuse(f"{tokens[0][1]} {text}")
        if text not in _OBJECT_KINDS:
            continue
        if text in ("DATABASE", "SCHEMA"):
            rest = tokens[index + 1 :]
            while rest and rest[0][0] == "word" and rest[0][1] in ("IF", "NOT", "EXISTS"):
                rest = rest[1:]
            _check_database(statement, rest[:1], databases)
        elif tokens[0][1] == "CREATE" and not _has_definer(tokens):
            if text in _NEEDS_DEFINER:
                raise statement.refuse(f"a {text.lower()} without a DEFINER")
            if text == "VIEW" and not _is_placeholder_view(tokens[index:]):
                raise statement.refuse("a view without a DEFINER")
        return
    raise statement.refuse(f"{tokens[0][1]} of an unexpected kind of object")


def _has_definer(tokens: list[tuple[str, str]]) -> bool:
    return ("word", "DEFINER") in tokens


def _is_placeholder_view(tokens: list[tuple[str, str]]) -> bool:
    """Whether this is the stand-in mysqldump writes for a view: `AS SELECT NULL|1 AS c, ...`."""
    words = _words(tokens)
    if "SELECT" not in words:
        return False
    after = tokens[tokens.index(("word", "SELECT")) + 1 :]
    for kind, text in after:
        if kind == "word" and text not in ("NULL", "AS") and not text.isdigit():
            return False
        if kind == "punct" and text != ",":
            return False
        if kind in ("string", "variable"):
            return False
    return True


def _check_definers(statement: _Statement) -> None:
    tokens = statement.tokens
    for index, token in enumerate(tokens):
        if token != ("word", "DEFINER"):
            continue
        rest = tokens[index + 1 : index + 5]
        if rest and rest[0] == ("punct", "="):
            rest = rest[1:]
        elif rest and rest[0][0] == "word":
            continue  # SQL SECURITY DEFINER
        user = _name_of(rest[0] if rest else None)
        host: str | None = None
        if len(rest) >= 2 and rest[1][0] == "variable" and len(rest[1][1]) > 1:
            host = rest[1][1][1:]
        elif len(rest) >= 3 and rest[1] == ("punct", "@"):
            host = _name_of(rest[2])
        if (
            user is None
            or host != ALLOWED_DEFINER_HOST
            or not ALLOWED_DEFINER_USER.fullmatch(user)
        ):
            shown = f"{user}@{host}" if user else "an unreadable account"
            raise statement.refuse(
                f"DEFINER {shown}: only the charm's relation users (relation-<n>@%) may own "
                "views, routines, triggers and events in a restore"
            )
