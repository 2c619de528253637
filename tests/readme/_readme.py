"""README's and docs/'s code, read as code: its fenced blocks, its shell commands, and a checker that holds
every `make` target and variable to the Makefile and every `--flag` to the argparse parser of
the CLI it is given to.

A block is skipped only when the line right before its fence says so, visibly:
``<!-- readme-test: skip (the reason) -->``; the test counts and lists those blocks."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tests.conftest import REPO

SHELL_LANGS = {"sh", "bash", "console", "shell"}
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
_SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
# What a shell line is split on into simple commands (quotes are respected by shlex).
_SEPARATORS = {"&&", "||", ";", "|", "&", ";;"}
_PYTHONS = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    skip: str | None = None  # the reason from the skip marker, if any
    source: str = "README.md"  # the page the block is on, relative to the repository

    @property
    def label(self) -> str:
        return f"{self.source}:{self.line} ({self.lang})"


def pages(root: Path = REPO) -> list[Path]:
    """The pages whose code is tested: README.md and every docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(text: str, source: str = "README.md") -> list[Block]:
    """Every fenced block, with the skip reason of a marker on the line before its fence."""
    found = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        found.append(
            Block(m["lang"].lower(), m["code"], line, skip and skip["reason"].strip(), source)
        )
    return found


def inline_commands(text: str) -> list[tuple[int, str]]:
    """(line, command) for each code span in the prose that runs one of the CLIs kettle ships:
    `make ...`, `python -m <repo module> ...`, `python <repo script>.py ...`, `<script>.py ...`."""
    prose = _FENCE.sub(lambda m: "\n" * m[0].count("\n"), text)
    found = []
    for m in _SPAN.finditer(prose):
        span = " ".join(m[1].split())
        words = span.split()
        if not words:
            continue
        first = words[0]
        if (
            first == "make"
            or (_PYTHONS.match(first) and len(words) > 1 and words[1] != "-c")
            or (first.endswith(".py") and len(words) > 1)  # a lone `x.py` names a file
        ):
            found.append((prose.count("\n", 0, m.start()) + 1, span))
    return found


def shell_commands(code: str) -> list[tuple[int, str]]:
    """(line offset in the block, line) for each command of a shell block, continuations
    joined and `$ ` prompts dropped."""
    found, pending, start = [], "", 0
    for offset, raw in enumerate(code.splitlines()):
        if not pending:
            start = offset
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        line, pending = pending.strip(), ""
        line = line[2:] if line.startswith("$ ") else line
        if line and not line.startswith("#"):
            found.append((start, line))
    return found


def simple_commands(line: str) -> list[list[str]]:
    """A command line split into simple commands (on &&, ||, ;, |, &), comments dropped.

    README's usage lines write optional groups as ``[--kind dense|sparse]`` and alternatives as
    ``[--normalize | --no-normalize]``: a group becomes its flags, so its `|` is no pipe."""
    line = re.sub(r"\[([^\]]*)\]", lambda m: " ".join(re.findall(r"--?[\w-]+", m[1])), line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: read it as plain words
        tokens = line.split()
    for token in tokens:
        if token in _SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


# ---------------------------------------------------------------------------------- Makefile
@dataclass(frozen=True)
class Makefile:
    targets: frozenset[str]
    variables: frozenset[str]


@cache
def read_makefile(path: Path) -> Makefile:
    """The targets a Makefile defines and the variables it assigns or reads."""
    text = re.sub(r"\\\n", " ", path.read_text())
    targets, variables = set(), set()
    for line in text.splitlines():
        if line.startswith(("\t", "#")):
            continue
        rule = re.match(r"^([^\s:=#][^:=#]*?)\s*::?(?!=)", line)
        if rule and not re.match(r"^\s*(export\s+)?[\w.-]+\s*[:?+!]?=", line):
            targets.update(t for t in rule[1].split() if "$" not in t and "%" not in t)
        assign = re.match(
            r"^\s*(?:export\s+|override\s+)?([A-Za-z_][\w]*)\s*(?:[:?+!]?=|:::=)", line
        )
        if assign:
            variables.add(assign[1])
    variables.update(re.findall(r"\$[({]([A-Za-z_]\w*)[)}]", text))
    targets.discard(".PHONY")
    return Makefile(frozenset(targets), frozenset(variables))


def check_make(words: list[str], root: Path) -> list[str]:
    """Problems with one `make ...` command: unknown targets, variables the Makefile never uses."""
    directory, targets, assigns = root, [], []
    rest = iter(words[1:])
    for word in rest:
        if word == "-C":
            directory = directory / next(rest, "")
        elif word.startswith("-C") and len(word) > 2:
            directory = directory / word[2:]
        elif word.startswith("-"):
            continue
        elif re.match(r"^[A-Za-z_]\w*=", word):
            assigns.append(word.split("=", 1)[0])
        else:
            targets.append(word)
    path = directory / "Makefile"
    if not path.is_file():
        return [f"{' '.join(words)!r}: no Makefile at {path.relative_to(root)}"]
    makefile = read_makefile(path)
    where = path.relative_to(root)
    problems = [
        f"{' '.join(words)!r}: {where} has no target {t!r}"
        for t in targets
        if t not in makefile.targets
    ]
    problems += [
        f"{' '.join(words)!r}: {where} never uses the variable {v}"
        for v in assigns
        if v not in makefile.variables
    ]
    return problems


# ------------------------------------------------------------------------------------- CLIs
# Run a CLI up to its first parse and print its parser as JSON, without running it: the script
# or module runs as __main__ with ArgumentParser.parse_known_args replaced.
_CAPTURE = r"""
import argparse, json, runpy, sys
kind, target, words = sys.argv[1], sys.argv[2], sys.argv[3:]

def describe(parser):
    out = {"options": sorted(parser._option_string_actions), "commands": {}}
    positionals = [a for a in parser._actions if not a.option_strings]
    first = positionals[0] if positionals else None
    if isinstance(first, argparse._SubParsersAction):
        out["commands"] = {name: describe(sub) for name, sub in first.choices.items()}
    elif first is not None and first.choices:  # a first positional with choices: a command word
        out["commands"] = {str(c): {"options": [], "commands": {}} for c in first.choices}
    return out

class Captured(BaseException):
    pass

def capture(self, args=None, namespace=None):
    print("PARSER " + json.dumps(describe(self)))
    raise Captured

argparse.ArgumentParser.parse_known_args = capture
sys.argv = [target, *words]
try:
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, str(__import__("pathlib").Path(target).parent))
        runpy.run_path(target, run_name="__main__")
except Captured:
    sys.exit(0)
sys.exit(f"{target} parsed no arguments with argparse")
"""


@dataclass
class Cli:
    options: frozenset[str]
    commands: dict[str, Cli] = field(default_factory=dict)


def _cli(data: dict) -> Cli:
    return Cli(frozenset(data["options"]), {k: _cli(v) for k, v in data["commands"].items()})


@cache
def load_cli(kind: str, target: str, root: Path, command: str | None = None) -> Cli | str:
    """The parser of ``python -m target`` (kind "module") or of the script ``target``; a string
    saying why when it cannot be read. ``command``: the parser it builds when run with that
    command word (a CLI that hands a command to a parser of its own, as `python -m kettle eval`)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CAPTURE, kind, target, *([command] if command else [])],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("PARSER "):
            return _cli(json.loads(line[len("PARSER ") :]))
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"cannot read its argparse parser: {tail}"


def _flag(word: str) -> str | None:
    """``--out`` of ``--out=models``; None for a word that is no option (values, ``-``)."""
    if re.match(r"^--?[A-Za-z][\w-]*(=.*)?$", word):
        return word.split("=", 1)[0]
    return None


def check_cli(words: list[str], root: Path) -> list[str]:
    """Problems with one `python -m MOD ...` / `python SCRIPT ...` / `SCRIPT ...` command whose
    module or script is the repository's: every flag must be one its parser (or the
    subcommand's) accepts, and a subcommand must be one it has."""
    shown = " ".join(words)
    if _PYTHONS.match(words[0]):
        args = words[1:]
        while args and args[0].startswith("-") and args[0] != "-m":
            args = args[2:] if args[0] in ("-X", "-W") else args[1:]  # interpreter options
        if not args:
            return []
        if args[0] == "-m":
            if len(args) < 2:
                return [f"{shown!r}: -m without a module"]
            module, args = args[1], args[2:]
            top = module.split(".")[0]
            if not ((root / top).is_dir() or (root / f"{top}.py").is_file()):
                return []  # a module of some other package (pytest, pip, ...)
            kind, target = "module", module
        else:
            kind, target, args = "script", args[0], args[1:]
    else:
        kind, target, args = "script", words[0], words[1:]
    if kind == "script":
        if not target.endswith(".py"):
            return []
        if not (root / target).is_file():
            return [f"{shown!r}: no script {target} in the repository"]
    flags = [f for f in map(_flag, args) if f]
    cli = load_cli(kind, target, root) if (flags or kind == "module") else None
    if cli is None:
        return []
    if isinstance(cli, str):
        return [f"{shown!r}: {cli}"] if flags or kind == "module" else []
    accepted = set(cli.options)
    if cli.commands:
        command = next((a for a in args if not a.startswith("-")), None)
        if command is None or command not in cli.commands:
            known = ", ".join(sorted(cli.commands))
            return [f"{shown!r}: {target} has no subcommand {command!r} (it has {known})"]
        accepted |= cli.commands[command].options
        if not cli.commands[command].options:  # a command word: maybe a parser of its own
            own = load_cli(kind, target, root, command)
            if isinstance(own, Cli) and not own.commands:
                accepted |= own.options
    return [f"{shown!r}: {target} accepts no option {f}" for f in flags if f not in accepted]


def check_command(words: list[str], root: Path) -> list[str]:
    """Problems with one simple command; commands of tools outside the repository pass."""
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]  # VAR=value before the command
    if not words:
        return []
    if words[0] == "make":
        return check_make(words, root)
    return check_cli(words, root)


def check_shell(text: str, root: Path = REPO, source: str = "README.md") -> tuple[list[str], int]:
    """(problems, commands checked) for every shell block and inline command of ``text``."""
    problems, checked = [], 0
    lines = [
        (b.line + 1 + offset, line)
        for b in blocks(text)
        if b.lang in SHELL_LANGS and not b.skip
        for offset, line in shell_commands(b.code)
    ]
    for where, line in [*lines, *inline_commands(text)]:
        for words in simple_commands(line):
            checked += 1
            problems += [f"{source}:{where}: {p}" for p in check_command(words, root)]
    return problems, checked


_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def broken_links(text: str, page: Path, root: Path = REPO) -> list[str]:
    """Relative links of ``page`` whose file does not exist (web links and anchors are not read)."""
    problems = []
    for m in _LINK.finditer(text):
        target = m["target"].split("#", 1)[0]
        if not target or re.match(r"^[a-z]+:", target):
            continue
        if not (page.parent / target).exists():
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{page.relative_to(root)}:{line}: no file {target}")
    return problems
