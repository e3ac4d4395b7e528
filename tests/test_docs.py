"""The manual cannot drift from the tool: its shell examples run, its pages exist, its CLI reference is whole.

Convention (docs/development.md, "The manual"): every fenced ```bash or ```sh block in README.md and
docs/**/*.md is run, each document's blocks in order in one fresh folder laid out like a checkout
(the folder is the repository root, ``../shared`` the shared data), unless the line before the
block is ``<!-- not-run: reason -->``. Each command line must exit 0, or the code its trailing
comment names (``# exit 3``). Plain ``avsync ...`` lines run in-process through Typer's test
runner (fast: no interpreter or torch start-up per line); anything else runs in bash with an
``avsync`` on PATH that runs this checkout. ``mkdocs build --strict`` itself runs in CI
(``.ci/run``), not here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
README_MAX_BYTES = 12_000

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
RUN_LANGS = {"bash", "sh"}
# Shell languages that would look runnable to a reader but escape this test: use bash/sh instead.
FORBIDDEN_LANGS = {"console", "shell", "shell-session", "zsh", "sh-session"}
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
EXPECTED_EXIT = re.compile(r"#\s*exit\s+(?P<code>\d+)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Anything that needs a real shell: pipes, redirections, lists, substitutions, globs.
SHELL_SYNTAX = re.compile(r"[|&;<>`$*?(){}]")


@dataclass(frozen=True)
class Block:
    """One fenced block of a document: where it starts, its language, its lines, why it is not run."""

    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    lines: tuple[str, ...]
    not_run: str | None


@dataclass(frozen=True)
class Command:
    """One command line of a block, continuation lines joined, with the exit code it must give."""

    text: str
    expected_exit: int


def doc_files() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


def parse_blocks(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, each with the not-run reason of the line before it (if any)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, m.group("indent")
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        reason = NOT_RUN.match(prev)
        blocks.append(Block(doc, start + 1, m.group("lang"), tuple(body), reason and reason.group("reason")))
        i += 1
    return blocks


def commands_of(block: Block) -> list[Command]:
    """The command lines of a block: ``\\``-continued lines joined, comment-only lines dropped."""
    out, pending = [], ""
    for raw in block.lines:
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith("#"):
            continue
        m = EXPECTED_EXIT.search(line)
        out.append(Command(line, int(m.group("code")) if m else 0))
    assert not pending, f"{block.doc.name}:{block.line}: a block ends with a continued line"
    return out


def runnable_blocks(doc: Path) -> list[Block]:
    return [b for b in parse_blocks(doc) if b.lang in RUN_LANGS and b.not_run is None]


def _in_process_argv(command: Command) -> tuple[dict[str, str], list[str]] | None:
    """``(env, argv)`` when the line is a plain ``[NAME=value ...] avsync ARGS`` command, else None."""
    code = command.text.split("#", 1)[0] if "#" in command.text else command.text
    try:
        words = shlex.split(command.text, comments=True)
    except ValueError:
        return None
    if SHELL_SYNTAX.search(code):
        return None
    env = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    if not words or words[0] != "avsync" or "--ray" in words:
        return None  # --ray alone is rewritten by the console script's main(); run that instead
    return env, words[1:]


@pytest.fixture
def checkout_layout(tmp_path, shared_dir, monkeypatch):
    """A fresh folder standing in for the repository root, with ``../shared`` beside it."""
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "shared").symlink_to(shared_dir, target_is_directory=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "avsync"
    shim.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c '
        '\'import sys; sys.argv[0] = "avsync"; from sparsesync_cli.cli import main; main()\' "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.chdir(root)
    # No example may reach the network or the user's cache: one that would download fails instead.
    monkeypatch.setenv("AVSYNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AVSYNC_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("AVSYNC_CALIBRATION", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    return root, bin_dir


def _run(command: Command, root: Path, bin_dir: Path) -> tuple[int, str]:
    plain = _in_process_argv(command)
    if plain is not None:
        from typer.testing import CliRunner

        from sparsesync_cli.cli import app

        env, argv = plain
        result = CliRunner().invoke(app, argv, env=env or None)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{command.text!r} raised {result.exception!r}\n{result.output}")
        return result.exit_code, result.output
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        ["bash", "-c", "set -o pipefail; " + command.text],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


DOCS_WITH_EXAMPLES = [d for d in doc_files() if runnable_blocks(d)]


@pytest.mark.parametrize("doc", DOCS_WITH_EXAMPLES, ids=lambda d: str(d.relative_to(REPO_ROOT)))
def test_shell_examples_run(doc, checkout_layout):
    root, bin_dir = checkout_layout
    for block in runnable_blocks(doc):
        commands = commands_of(block)
        assert commands, f"{doc.name}:{block.line}: an empty {block.lang} block"
        for command in commands:
            code, output = _run(command, root, bin_dir)
            assert code == command.expected_exit, (
                f"{doc.relative_to(REPO_ROOT)}:{block.line}: `{command.text}` exited {code}, "
                f"the page says {command.expected_exit}\n{output}"
            )


def test_examples_follow_the_convention():
    """Shell blocks are bash/sh (never a tag the runner would miss), and every not-run says why."""
    for doc in doc_files():
        text = doc.read_text(encoding="utf-8").splitlines()
        blocks = parse_blocks(doc)
        for block in blocks:
            assert block.lang not in FORBIDDEN_LANGS, (
                f"{doc.name}:{block.line}: ```{block.lang}: use ```bash (run) or ```text (a transcript)"
            )
            if block.not_run is not None:
                assert block.lang in RUN_LANGS, f"{doc.name}:{block.line}: not-run before a non-shell block"
        marked = {b.line for b in blocks if b.not_run is not None}
        for number, line in enumerate(text, start=1):
            if line.strip().startswith("<!--") and re.search(r"not.?run", line):
                assert NOT_RUN.match(line), f"{doc.name}:{number}: write <!-- not-run: reason -->"
                following = next(n for n in range(number + 1, len(text) + 1) if text[n - 1].strip())
                assert following in marked, f"{doc.name}:{number}: a not-run line must precede a block"


def test_the_readme_and_the_quick_start_run_examples():
    # The offline quick start is the point of both pages: they must keep examples that run.
    for doc in (REPO_ROOT / "README.md", DOCS / "quickstart.md"):
        commands = [c.text for b in runnable_blocks(doc) for c in commands_of(b)]
        assert any(c.startswith("avsync predict ../shared/media/") for c in commands), doc.name


def test_parser_reads_the_conventions(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-run: needs a GPU -->\n```bash\navsync predict x.mp4 --device cuda\n```\n\n"
        "```bash\navsync predict a.mp4 \\\n    --json  # exit 1\n# a comment\nls | wc -l\n```\n"
        "```text\n$ avsync models\n```\n"
    )
    blocks = parse_blocks(page)
    assert [(b.lang, b.not_run) for b in blocks] == [("bash", "needs a GPU"), ("bash", None), ("text", None)]
    commands = commands_of(blocks[1])
    assert commands == [Command("avsync predict a.mp4  --json  # exit 1", 1), Command("ls | wc -l", 0)]
    assert _in_process_argv(commands[0]) == ({}, ["predict", "a.mp4", "--json"])
    assert _in_process_argv(commands[1]) is None
    assert _in_process_argv(Command("AVSYNC_OFFLINE=1 avsync models", 0)) == (
        {"AVSYNC_OFFLINE": "1"},
        ["models"],
    )


def test_readme_is_short():
    size = (REPO_ROOT / "README.md").stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes; move detail into docs/ (limit {README_MAX_BYTES})"
    )


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    assert len(pages) >= 6
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml names pages that do not exist: {missing}"
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert on_disk - set(pages) == set(), "pages missing from the nav of mkdocs.yml"


def _load_hook():
    spec = importlib.util.spec_from_file_location("cli_reference_hook", DOCS / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sections(markdown: str) -> dict[str, str]:
    """Heading text -> the text under it, up to the next heading."""
    parts = re.split(r"^#{2,6} (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_cli_reference_has_every_command_and_option():
    import typer

    from sparsesync_cli.cli import app

    hook = _load_hook()
    assert hook.MARKER in (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    sections = _sections(hook.cli_reference_markdown())

    # Walk the app here, independently of the hook, and find each command and each option in its section.
    def walk(command, ctx, path):
        assert path in sections, f"the CLI reference lacks `{path}`"
        for param in command.get_params(ctx):
            if "--help" in param.opts:
                continue
            names = param.opts if param.param_type_name == "option" else [param.name.upper(), param.name]
            assert any(f"`{n}" in sections[path] or f" {n}`" in sections[path] for n in names), (
                f"the CLI reference of `{path}` lacks {names}"
            )
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                walk(sub, sub.context_class(sub, info_name=name, parent=ctx), f"{path} {name}")

    root = typer.main.get_command(app)
    walk(root, root.context_class(root, info_name="avsync"), "avsync")
    for expected in ("avsync predict", "avsync fix", "avsync score", "avsync models", "avsync download",
                     "avsync evaluate", "avsync report"):  # fmt: skip
        assert expected in sections


def test_ci_runs_the_readme_test_command():
    # .ci/run's contract: it runs the test command the README names (in CI's own venv).
    readme_commands = [c.text for b in parse_blocks(REPO_ROOT / "README.md") for c in commands_of(b)]
    test_command = next(c for c in readme_commands if "the test command" in c)
    args = shlex.split(test_command, comments=True)
    assert args[:3] == ["python3", "-m", "pytest"], test_command
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert f'"$PY" {shlex.join(args[1:])}' in ci, f".ci/run does not run the README's `{test_command}`"
    assert any(line.endswith('mkdocs build --strict --site-dir "$(mktemp -d)"') for line in ci)
