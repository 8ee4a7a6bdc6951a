"""What every ``nephele`` command shares: the global options, output (table, JSON, YAML), error
handling with the exit codes of docs/cli.md, confirmation of destructive commands, and waiting
for an operation with a live state line or a progress bar."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from .client import API_ERROR, NOT_FOUND, TIMED_OUT, USAGE, Api, CliError, profile

out = Console()
err = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class State:
    profile: str | None = None
    output: Output = Output.table
    project: int | None = None


state = State()
Columns = Sequence[tuple[str, str]]


def api() -> Api:
    return Api(profile(state.profile))


def project_id(a: Api) -> int | None:
    return state.project if state.project is not None else a.profile.project


def need_project(a: Api) -> int:
    pid = project_id(a)
    if pid is None:
        raise CliError("name the project: --project ID (or log in with --default-project)", API_ERROR, "project")
    return pid


def compact(**values: Any) -> dict[str, Any]:
    """The options that were given (None means "not given")."""
    return {k: v for k, v in values.items() if v is not None}


def pairs(items: list[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` options (``--filter state=ready``, ``--label zone=a``) as a mapping."""
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{option} takes KEY=VALUE, not {item!r}", USAGE, option.lstrip("-"))
        result[key] = value
    return result


def show(rows: Any, columns: Columns = (), title: str = "") -> None:
    """Rows (a dict or a list of dicts) as a table, or the API's own JSON / YAML."""
    if state.output == Output.json:
        out.print_json(json.dumps(rows))
        return
    if state.output == Output.yaml:
        import yaml  # only when asked for: every command's start-up time counts

        print(yaml.safe_dump(rows, sort_keys=False), end="")
        return
    if isinstance(rows, dict):
        t = Table(show_header=False, title=title or None)
        for key, value in rows.items():
            t.add_row(key, cell(value))
    else:
        t = Table(title=title or None)
        for _key, label in columns:
            t.add_column(label)
        for row in rows:
            t.add_row(*[cell(row.get(key)) for key, _label in columns])
    out.print(t)


def report(message: str, data: Any) -> None:
    """A command that has no object to show: a sentence in table mode, ``data`` for scripts."""
    if state.output == Output.table:
        out.print(message, highlight=False)
    else:
        show(data)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def run(command: Callable[[], None]) -> None:
    """Run a command; a CliError is printed (with the field at fault) and sets the exit code."""
    try:
        command()
    except CliError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        err.print(f"[red]error[/red]: {exc.message}{where}", highlight=False, markup=True)
        raise typer.Exit(exc.code) from None


def confirm(question: str, yes: bool) -> None:
    """Destructive commands ask first (``--yes`` answers for scripts); "no" leaves with code 1."""
    if yes:
        return
    if not typer.confirm(question):
        err.print("not done")
        raise typer.Exit(API_ERROR)


def wait_state(
    a: Api,
    path: str,
    busy: Callable[[dict[str, Any]], bool],
    line: Callable[[dict[str, Any]], str],
    timeout: float,
    failed: Callable[[dict[str, Any]], str] = lambda obj: "",
    gone_ok: bool = False,
) -> dict[str, Any] | None:
    """Poll ``path`` once a second with a live state line (on stderr) until ``busy`` is false;
    the object at the end (None when it is gone and ``gone_ok``). A failed operation
    (``failed`` says why) exits with code 1, a timeout with code 7."""
    deadline = time.monotonic() + timeout
    with err.status("…") as status:
        while True:
            try:
                obj = a.get(path)
            except CliError as exc:
                if gone_ok and exc.code == NOT_FOUND:
                    return None
                raise
            status.update(line(obj))
            why = failed(obj)
            if why:
                raise CliError(f"{line(obj)}: {why}", API_ERROR)
            if not busy(obj):
                return obj  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise CliError(f"{line(obj)} still, after {timeout:.0f} s", TIMED_OUT)
            time.sleep(1)


def wait_progress(
    a: Api, path: str, busy: Callable[[dict[str, Any]], bool], label: str, timeout: float,
    failed: Callable[[dict[str, Any]], str] = lambda obj: "",
) -> dict[str, Any]:  # fmt: skip
    """Like ``wait_state`` for an operation that reports ``progress`` (0–100): a progress bar."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:  # fmt: skip
        task = bar.add_task(label, total=100)
        while True:
            obj = a.get(path)
            bar.update(task, completed=obj.get("progress") or 0, description=f"{label} ({obj.get('state')})")
            why = failed(obj)
            if why:
                raise CliError(f"{label}: {why}", API_ERROR)
            if not busy(obj):
                return obj  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise CliError(f"{label} still {obj.get('state')} after {timeout:.0f} s", TIMED_OUT)
            time.sleep(1)
