"""The documentation shows only what exists: every ``gradiend-bench`` command and flag it names is in the CLI's
parser, every ``make`` target in the Makefile, every script path on disk, and every relative link resolves
(anchors included)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "perf").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"gradiend-bench((?: +[^\s`|#;&()]+)+)")
MAKE = re.compile(r"(?:^|[`(]|\$ )make ((?:[a-z][a-z-]*)(?: [A-Z_]+=\S+)*)")
SCRIPT = re.compile(r"python (?:-m \S+ )?((?:perf|benchmarks|tests|harness|methods|leaderboard)/[\w/.-]+\.(?:py|sh))")


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, in_code = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    return anchors


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_command(words: list[str], where: str) -> list[str]:
    """Problems with one shown command line: unknown sub-commands or flags."""
    parser, path = build_parser(), ["gradiend-bench"]
    for word in words:
        if word.startswith("-"):
            break
        children = _subparsers(parser)
        if not children:
            break
        if word not in children:
            if word.isupper() or word in {"...", "…"}:  # a placeholder such as COMMAND
                return []
            return [f"{where}: `{' '.join(path)} {word}` is not a command (choices: {sorted(children)})"]
        parser, path = children[word], [*path, word]
    known = set(parser._option_string_actions)
    flags = {w.split("=")[0] for w in words if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", w)}
    return [f"{where}: `{' '.join(path)}` has no flag {flag}" for flag in sorted(flags - known)]


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([a-z][a-z-]*):", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_resolve(page: Path) -> None:
    problems = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        if not resolved.exists():
            problems.append(f"{_relative(page)}: link {target} -> {file} does not exist")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{_relative(page)}: link {target} -> no heading #{anchor} in {resolved.name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_shown_commands_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8").replace("\\\n", " ")
    problems = []
    for match in COMMAND.finditer(text):
        words = [w.strip("`'\",") for w in match.group(1).split()]
        problems += _check_command([w for w in words if w], _relative(page))
    targets = _makefile_targets()
    for match in MAKE.finditer(text):
        target = match.group(1).split()[0]
        if target not in targets:
            problems.append(f"{_relative(page)}: `make {target}` is not a Makefile target")
    for script in SCRIPT.findall(text):
        if not (ROOT / script).exists():
            problems.append(f"{_relative(page)}: script {script} does not exist")
    assert not problems, "\n".join(problems)


def test_checker_finds_a_wrong_flag_and_command() -> None:
    assert _check_command(["run", "configs/demo.yaml", "--dry-run"], "x") == []
    assert _check_command(["run", "configs/demo.yaml", "--no-such-flag"], "x")
    assert _check_command(["leaderbored"], "x")
    assert _slug("Deviations from the paper's fine-tuning") == "deviations-from-the-papers-fine-tuning"


def test_prose_lines_are_wrapped_at_120() -> None:
    """Tables, code blocks and the generated leaderboard may be wider (a table cannot wrap); prose may not."""
    long = []
    for page in PAGES:
        in_code = generated = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            elif line.startswith("<!-- leaderboard:"):
                generated = line.startswith("<!-- leaderboard:start")
            elif not (in_code or generated) and not line.startswith("|") and len(line) > 120:
                long.append(f"{_relative(page)}:{number} ({len(line)} characters)")
    assert not long, "\n".join(long)
