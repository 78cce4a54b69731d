"""The README and docs/*.md stay true to the repository (run by `make test`, so by CI).

For README.md and every page in docs/:

- every relative Markdown link resolves to a file or directory (relative to the page), and a
  `#anchor` names a heading of the target page under GitHub's slug rules; links with a
  scheme (http, https, mailto) are not followed: no network;
- every repository path named in inline code exists, relative to the repository root,
  except paths that only exist at run time (RUNTIME_PATHS);
- every `make X` in inline code or a code block is a target of the Makefile;
- the table of docs/configuration.md lists exactly the settings the code reads (derived
  from the code by code_settings), once each, and no other page tables them again;
- the README stays a landing page: a Quick start of exactly `make run` and `make test`, at
  most README_MAX_LINES lines, a link to every docs page; every docs page links back to it.

Each test lists every offender it finds, as `page: problem`.
"""

import ast
import fnmatch
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

from booking import config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
README_MAX_LINES = 120

# Paths a page may name that are made at run time, not kept in the repository.
RUNTIME_PATHS = {
    "instance/": "the instance folder: the generated admin password, SQLite, instance/config.py",
    "logs/": "the default LOG_FILE's directory",
    ".venv/": "the virtualenv `make install` creates",
    "tests/node/node_modules/": "what npm installs from tests/node/package-lock.json",
}
# Inline code that is a path: a file name with one of these endings, or anything with a slash
# made of path characters. Not: absolute paths (an operator's machine), URLs, media types.
FILE_ENDINGS = (
    ".py", ".md", ".json", ".png", ".txt", ".conf", ".service", ".cfg", ".toml", ".ini",
    ".sh", ".yml", ".yaml", ".mako", ".sqlite3", ".log",
)  # fmt: skip
PATH_CHARS = re.compile(r"[\w.*{},/-]+")
MEDIA_TYPE = re.compile(r"(application|text|image|audio|video|multipart)/")
# The code that reads settings: the app, and gunicorn's configuration.
SETTINGS_CODE = [*sorted((ROOT / "booking").rglob("*.py")), ROOT / "gunicorn.conf.py"]
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*")

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+([A-Za-z0-9_][\w.-]*)", re.MULTILINE)


def pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


class Page:
    """A Markdown page split into prose and fenced code blocks."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = path.read_text(encoding="utf-8").splitlines()
        prose: list[str] = []
        self.blocks: list[str] = []
        block: list[str] | None = None
        for line in self.lines:
            if FENCE.match(line):
                if block is None:
                    block = []
                else:
                    self.blocks.append("\n".join(block))
                    block = None
                prose.append("")
            elif block is not None:
                block.append(line)
                prose.append("")
            else:
                prose.append(line)
        self.prose = prose  # one entry per line, fenced lines blanked
        text = "\n".join(prose)
        self.code_spans = [" ".join(m.group(2).split()) for m in CODE_SPAN.finditer(text)]
        # Links are read with code spans blanked, so code that looks like a link is not one.
        self.links = [m.group(1) for m in LINK.finditer(CODE_SPAN.sub("code", text))]

    def headings(self) -> list[tuple[int, str]]:
        found = []
        for line in self.prose:
            if m := HEADING.match(line):
                found.append((len(m.group(1)), m.group(2)))
        return found

    def section(self, title: str) -> list[str]:
        """The lines under a heading, up to the next heading of its level or above."""
        out: list[str] | None = None
        level = 0
        for number, line in enumerate(self.lines):
            m = HEADING.match(self.prose[number])
            if m and out is not None and len(m.group(1)) <= level:
                break
            if out is not None:
                out.append(line)
            elif m and m.group(2) == title:
                out, level = [], len(m.group(1))
        return out or []


@cache
def page(path: Path) -> Page:
    return Page(path)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: text only, lowercase, punctuation but - and _ dropped,
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, heading in page(path).headings():
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_relative_links_and_anchors_resolve():
    broken = []
    for path in pages():
        for target in page(path).links:
            if SCHEME.match(target):
                continue  # http(s), mailto: not followed
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / unquote(file_part)).resolve() if file_part else path
            if not resolved.is_relative_to(ROOT):
                broken.append(f"{name(path)}: {target} points outside the repository")
            elif not resolved.exists():
                broken.append(f"{name(path)}: {target} ({name(resolved)} does not exist)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{name(path)}: {target} (no heading #{anchor} in {name(resolved)})")
    assert not broken, "Broken links:\n" + "\n".join(broken)


def expand_braces(path: str) -> list[str]:
    """`bench/results/latest.{json,md}` -> both names."""
    m = re.search(r"\{([^{}]*)\}", path)
    if not m:
        return [path]
    return [
        expanded
        for choice in m.group(1).split(",")
        for expanded in expand_braces(path[: m.start()] + choice + path[m.end() :])
    ]


def named_paths(span: str) -> list[str]:
    """The words of an inline code span that name a repository path."""
    found = []
    for word in span.split():
        if (
            PATH_CHARS.fullmatch(word)
            and not word.startswith(("/", ".."))
            and not MEDIA_TYPE.match(word)
            and ("/" in word or word.endswith(FILE_ENDINGS))
        ):
            found.extend(expand_braces(word))
    return found


def exists_in_repository(path: str) -> bool:
    if any(path == prefix or path.startswith(prefix) for prefix in RUNTIME_PATHS):
        return True
    if "*" in path:
        return any(fnmatch.fnmatch(p.relative_to(ROOT).as_posix(), path) for p in ROOT.rglob("*"))
    return (ROOT / path).exists()


def test_paths_named_in_inline_code_exist():
    missing = []
    for path in pages():
        for span in page(path).code_spans:
            for named in named_paths(span):
                if not exists_in_repository(named):
                    missing.append(f"{name(path)}: `{span}` names {named}, which does not exist")
    assert not missing, (
        "Paths named in inline code that are not in the repository (relative to its root;"
        " run-time paths go in RUNTIME_PATHS):\n" + "\n".join(missing)
    )


@cache
def make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if m := re.match(r"([^\s#:=][^:#=]*?)\s*::?(?!=)", line):
            targets.update(t for t in m.group(1).split() if "$" not in t)
    return targets


def test_make_targets_named_exist():
    unknown = []
    for path in pages():
        code = [*page(path).code_spans, *page(path).blocks]
        for target in sorted({m.group(1) for text in code for m in MAKE.finditer(text)}):
            if target not in make_targets():
                unknown.append(f"{name(path)}: make {target}")
    assert not unknown, (
        f"make targets named in the docs but not in the Makefile ({sorted(make_targets())}):\n"
        + "\n".join(unknown)
    )


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _is_config(node: ast.AST) -> bool:
    """app.config, current_app.config, config, cfg: the Flask config, as this code names it."""
    source = ast.unparse(node)
    return source == "cfg" or source == "config" or source.endswith(".config")


def _text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _env_readers(tree: ast.Module) -> set[str]:
    """Helpers such as config._int(name, default): functions that read the environment
    variable their first parameter names."""
    readers = set()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or not function.args.args:
            continue
        parameter = function.args.args[0].arg
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("get", "getenv")
                and call.args
                and isinstance(call.args[0], ast.Name)
                and call.args[0].id == parameter
            ):
                readers.add(function.name)
    return readers


def _read(node: ast.AST, readers: set[str]) -> tuple[str, str | None]:
    """("env", NAME) for an environment variable read, ("config", KEY) for a read of the
    app's config, ("default", KEY) for config.setdefault, else ("", None)."""
    if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        if _is_environ(node.value):
            return "env", _text(node.slice)
        if _is_config(node.value):
            return "config", _text(node.slice)
    if not (isinstance(node, ast.Call) and node.args):
        return "", None
    func, first = node.func, _text(node.args[0])
    if isinstance(func, ast.Name) and func.id in readers:
        return "env", first
    if not isinstance(func, ast.Attribute):
        return "", None
    if func.attr == "getenv" or (func.attr == "get" and _is_environ(func.value)):
        return "env", first
    if func.attr == "get" and _is_config(func.value):
        return "config", first
    if func.attr == "setdefault" and _is_config(func.value):
        return "default", first
    return "", None


@cache
def code_settings() -> dict[str, str]:
    """Every setting the code reads, with where: environment variables (os.environ,
    os.getenv, or a helper wrapping them such as config._int), the keys
    config.from_environment gives the app, the defaults the app lets instance/config.py
    override (config.setdefault), and keys of the app's config the code reads but never
    sets itself (config.update)."""
    settings: dict[str, str] = {}
    config_reads: dict[str, str] = {}
    set_by_code: set[str] = set()
    for path in SETTINGS_CODE:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        readers = _env_readers(tree)
        for node in ast.walk(tree):
            kind, key = _read(node, readers)
            if key and SETTING_NAME.fullmatch(key):
                found = config_reads if kind == "config" else settings
                found.setdefault(key, f"{name(path)}:{node.lineno}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
                and _is_config(node.func.value)
            ):
                set_by_code.update(keyword.arg for keyword in node.keywords if keyword.arg)
    for key in config.from_environment(str(ROOT / "instance")):
        settings.setdefault(key, "booking/config.py, from_environment()")
    for key, where in config_reads.items():
        if key not in set_by_code:
            settings.setdefault(key, where)
    return settings


def table_settings(path: Path) -> list[tuple[str, list[str]]]:
    """(row, the setting names in its first cell) for each body row of the page's tables."""
    rows = []
    header = True
    for line in page(path).prose:
        if not line.startswith("|"):
            header = True
            continue
        if header or re.fullmatch(r"\|[\s:|-]*", line):
            header = False
            continue
        first = line.strip("|").split("|")[0]
        names = [m.group(2) for m in CODE_SPAN.finditer(first)]
        rows.append((line, [n for n in names if SETTING_NAME.fullmatch(n)]))
    return rows


def test_the_configuration_table_lists_exactly_the_settings_the_code_reads():
    read = code_settings()
    assert len(read) > 20, f"code_settings() found too little to be right: {sorted(read)}"
    problems = []
    tabled: dict[str, int] = {}
    for row, names in table_settings(CONFIGURATION):
        if len(names) != 1:
            problems.append(f"a row should name exactly one setting: {row[:80]}")
        for setting in names:
            tabled[setting] = tabled.get(setting, 0) + 1
    problems += [
        f"{s}: read at {read[s]}, missing from the table"
        for s in sorted(read.keys() - tabled.keys())
    ]
    problems += [
        f"{s}: in the table, but the code never reads it"
        for s in sorted(tabled.keys() - read.keys())
    ]
    problems += [f"{s}: in the table {n} times" for s, n in sorted(tabled.items()) if n > 1]
    for path in pages():
        if path != CONFIGURATION:
            for row, names in table_settings(path):
                problems += [
                    f"{name(path)} tables {n} again: {row[:80]}" for n in names if n in read
                ]
    assert not problems, "docs/configuration.md against the code:\n" + "\n".join(problems)


def test_the_readme_is_a_landing_page():
    readme = page(README)
    problems = []
    if len(readme.lines) > README_MAX_LINES:
        problems.append(f"{len(readme.lines)} lines, over {README_MAX_LINES}: move text to docs/")
    commands = []  # the lines of the Quick start's code blocks, comments dropped
    in_block = False
    for line in readme.section("Quick start"):
        if FENCE.match(line):
            in_block = not in_block
        elif in_block and line.split("#")[0].strip():
            commands.append(line.split("#")[0].strip())
    if commands != ["make run", "make test"]:
        problems.append(f"the Quick start should be exactly `make run` and `make test`: {commands}")
    linked = {
        (README.parent / unquote(t.partition("#")[0])).resolve()
        for t in readme.links
        if not SCHEME.match(t)
    }
    for path in pages()[1:]:
        if path not in linked:
            problems.append(f"README.md does not link {name(path)}")
        back = {(path.parent / unquote(t.partition("#")[0])).resolve() for t in page(path).links}
        if README not in back:
            problems.append(f"{name(path)} does not link back to README.md")
    assert not problems, "The README as a landing page:\n" + "\n".join(problems)
