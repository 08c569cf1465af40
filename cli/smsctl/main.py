"""smsctl commands: log in, import contacts, run and watch campaigns, send and list messages.

Long work shows live progress (an import's rows, a campaign's sent, delivered and
failed counts) on stderr; with --json a command prints one JSON document on
stdout instead and nothing else, for scripts.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from smsctl.client import Api, ApiError, Exit, config_path, load_config, save_config

EXIT_CODES = (
    "Exit codes: 0 done; 1 the work failed (a campaign failed or was cancelled, an import failed, a wait timed "
    "out); 2 bad arguments; 3 not logged in, or the credential was refused; 4 the API refused the request; "
    "5 the API was unreachable or failed."
)
app = typer.Typer(help=f"The Bulk SMS Platform from a terminal. {EXIT_CODES}", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts: import a CSV file.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Campaigns: create, preview, send and watch.", no_args_is_help=True)
messages_app = typer.Typer(help="Single messages: send and list.", no_args_is_help=True)
exports_app = typer.Typer(help="Exports: the account's messages as a gzip CSV.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(messages_app, name="messages")
app.add_typer(exports_app, name="exports")

FINAL_CAMPAIGN_STATES = {"completed", "failed", "cancelled"}
INLINE_CSV_BYTES = 5 * 1024 * 1024  # larger files go through a presigned upload


class State:
    api: Api
    json: bool = False


state = State()
err = Console(stderr=True)


@app.callback()
def main(
    base_url: Annotated[
        str | None, typer.Option(envvar="SMSCTL_BASE_URL", help="The API's base URL (else the config file's)")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="SMSCTL_TOKEN", help="An API token or session (else the config file's)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, no progress")] = False,
) -> None:
    state.api = Api.from_settings(base_url, token)
    state.json = json_output


def _emit(document: Any, human: str | None = None) -> None:
    if state.json:
        sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")
    elif human is not None:
        Console().print(human, highlight=False, markup=False)


def _run(action: Any) -> Any:
    """Runs `action()`, turning an API error into its message on stderr and its exit code."""
    try:
        return action()
    except ApiError as exc:
        if state.json:
            sys.stdout.write(json.dumps({"error": str(exc), "status": exc.status, "exit_code": exc.code}) + "\n")
        else:
            err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(exc.code) from exc


@app.command()
def login(
    username: Annotated[str | None, typer.Option(help="Log in with a password (a one-hour session)")] = None,
    password: Annotated[str | None, typer.Option(help="Asked for if not given")] = None,
    token: Annotated[str | None, typer.Option("--api-token", help="Store this API token instead")] = None,
) -> None:
    """Store a credential and the base URL in the config file (mode 600)."""
    api = state.api
    if token is None:
        if username is None:
            username = typer.prompt("Username or email")
        if password is None:
            password = typer.prompt("Password", hide_input=True)
        session = _run(
            lambda: api.call("POST", "/v1/auth/login", json_body={"login": username, "password": password}, auth=False)
        )
        token = str(session["access_token"])
    api.token = token
    me = _run(lambda: api.call("GET", "/v1/users/me"))
    path = save_config({**load_config(), "base_url": api.base_url, "token": token})
    _emit(
        {"username": me["username"], "base_url": api.base_url, "config": str(path)},
        f"Logged in to {api.base_url} as {me['username']} (saved in {path}).",
    )


@app.command()
def whoami() -> None:
    """The account the stored credential belongs to, and its credits."""
    me = _run(lambda: state.api.call("GET", "/v1/users/me"))
    _emit(me, f"{me['username']} ({me['role']}) at {state.api.base_url}: {me['sms_credits']} credits")


@contacts_app.command("import")
def import_contacts(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV with a phone column")],
    group_id: Annotated[str | None, typer.Option(help="Add every imported contact to this group")] = None,
    default_region: Annotated[str | None, typer.Option(help="Region for national numbers, e.g. GB")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the import to its end")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most")] = 3600,
) -> None:
    """Import contacts, with a progress bar until the import finishes and a summary of the rows it skipped."""
    api = state.api
    data = file.read_bytes()
    params = {"group_id": group_id, "default_region": default_region}
    if len(data) <= INLINE_CSV_BYTES:
        started = _run(
            lambda: api.call("POST", "/v1/contacts/imports", content=data, content_type="text/csv", params=params)
        )
    else:
        started = _run(
            lambda: api.call(
                "POST",
                "/v1/contacts/imports",
                json_body={"upload": True, "group_id": group_id, "default_region": default_region},
            )
        )
        _run(lambda: _upload(started["upload_url"], data))
    import_id = started["import_id"]
    if not wait:
        _emit(started, f"Import {import_id} started.")
        return
    expected = max(0, data.count(b"\n") - 1 + (0 if data.endswith(b"\n") else 1))

    def read() -> dict[str, Any]:
        return dict(_run(lambda: api.call("GET", f"/v1/contacts/imports/{import_id}")))

    def finished(found: dict[str, Any]) -> bool:
        return found["status"] in ("completed", "failed")

    if state.json:
        done = _run(lambda: api.wait(read, finished, 0.5, timeout))
    else:
        with Progress(
            TextColumn("[bold]import[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
            console=err,
        ) as progress:  # fmt: skip
            task = progress.add_task("import", total=expected or None)

            def shown() -> dict[str, Any]:
                found = read()
                progress.update(
                    task, total=max(found["total_rows"], expected) or None, completed=found["processed_rows"]
                )
                return found

            done = _run(lambda: api.wait(shown, finished, 0.5, timeout))
    _emit(done, _import_summary(done))
    if done["status"] != "completed":
        raise typer.Exit(Exit.FAILED)


def _upload(url: str, data: bytes) -> None:
    import httpx

    try:
        httpx.put(url, content=data, headers={"content-type": "text/csv"}, timeout=300).raise_for_status()
    except httpx.HTTPError as exc:
        raise ApiError(Exit.UNAVAILABLE, f"The upload failed: {exc}") from exc


def _import_summary(done: dict[str, Any]) -> str:
    if done["status"] == "failed":
        return f"Import failed: {done.get('error_message')}"
    lines = [
        f"Imported {done['imported']} new, updated {done['updated']}, unchanged {done['unchanged']}, "
        f"{done['duplicates']} duplicates, {done['invalid']} invalid (of {done['total_rows']} rows)."
    ]
    for error in done["errors"][:20]:
        lines.append(f"  row {error['row']}: {error['reason']}")
    if len(done["errors"]) > 20:
        lines.append(f"  ... and {len(done['errors']) - 20} more (--json lists up to 1,000)")
    return "\n".join(lines)


@campaigns_app.command("create")
def create_campaign(
    name: Annotated[str, typer.Option()],
    template: Annotated[str, typer.Option(help="The message, with {{first_name}}-style fields")],
    group_id: Annotated[list[str], typer.Option("--group-id", help="Repeat for several groups")],
    sender_id: Annotated[str | None, typer.Option()] = None,
    scheduled_time: Annotated[str | None, typer.Option(help="ISO 8601 with a UTC offset")] = None,
) -> None:
    """Create a draft campaign."""
    body = {"name": name, "message_template": template, "group_ids": group_id, "sender_id": sender_id}
    if scheduled_time:
        body["scheduled_time"] = scheduled_time
    created = _run(lambda: state.api.call("POST", "/v1/campaigns", json_body={k: v for k, v in body.items() if v}))
    _emit(created, f"Campaign {created['id']} created ({created['status']}).")


@campaigns_app.command("preview")
def preview_campaign(campaign_id: str) -> None:
    """How the message renders, and what sending it will cost."""
    found = _run(lambda: state.api.call("POST", f"/v1/campaigns/{campaign_id}/preview"))
    _emit(
        found,
        f"{found['text']}\n\n{found['recipients']} recipients, {found['segments']} segment(s) each "
        f"({found['encoding']}), about {found['estimated_credits']} credits.",
    )


@campaigns_app.command("send")
def send_campaign(
    campaign_id: str,
    watch: Annotated[bool, typer.Option(help="Follow it with live counts until it ends")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to watch at most")] = 24 * 3600,
) -> None:
    """Send a campaign now, and watch it."""
    sent = _run(lambda: state.api.call("POST", f"/v1/campaigns/{campaign_id}/send"))
    if not watch:
        _emit(sent, f"Campaign {campaign_id} is {sent.get('status', 'queued')}.")
        return
    _watch(campaign_id, timeout)


@campaigns_app.command("watch")
def watch_campaign(
    campaign_id: str, timeout: Annotated[float, typer.Option(help="Seconds to watch at most")] = 24 * 3600
) -> None:
    """Live counts (sent, delivered, failed) until the campaign ends; exit 1 if it failed or was cancelled."""
    _watch(campaign_id, timeout)


def _counts_table(campaign: dict[str, Any], stats: dict[str, Any]) -> Table:
    table = Table(title=f"campaign {campaign['name']} - {campaign['status']}", title_justify="left")
    for column in ("total", "queued", "sent", "delivered", "failed", "undelivered", "credits spent"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(stats.get(key, 0)) for key in ("total", "queued", "sent", "delivered", "failed", "undelivered")),
        str(stats.get("credits_spent", 0)),
    )
    return table


def _watch(campaign_id: str, timeout: float) -> None:
    api = state.api

    def read() -> tuple[dict[str, Any], dict[str, Any]]:
        campaign = _run(lambda: api.call("GET", f"/v1/campaigns/{campaign_id}"))
        return campaign, _run(lambda: api.call("GET", f"/v1/campaigns/{campaign_id}/stats"))

    def ended(found: tuple[dict[str, Any], dict[str, Any]]) -> bool:
        return found[0]["status"] in FINAL_CAMPAIGN_STATES

    if state.json:
        campaign, stats = _run(lambda: api.wait(read, ended, 1.0, timeout))
    else:
        with Live(console=err, auto_refresh=False) as live:

            def shown() -> tuple[dict[str, Any], dict[str, Any]]:
                found = read()
                live.update(_counts_table(*found), refresh=True)
                return found

            campaign, stats = _run(lambda: api.wait(shown, ended, 1.0, timeout))
    _emit(
        {"campaign": campaign, "stats": stats},
        f"Campaign {campaign['name']} {campaign['status']}: {stats.get('delivered', 0)} delivered, "
        f"{stats.get('sent', 0)} sent, {stats.get('failed', 0) + stats.get('undelivered', 0)} failed or undelivered "
        f"of {stats.get('total', 0)}; {stats.get('credits_spent', 0)} credits spent, "
        f"{stats.get('credits_refunded', 0)} refunded."
        + (f"\n{campaign['failure_reason']}" if campaign.get("failure_reason") else ""),
    )
    if campaign["status"] != "completed":
        raise typer.Exit(Exit.FAILED)


@messages_app.command("send")
def send_message(
    to: Annotated[list[str], typer.Option("--to", help="E.164 number; repeat for several (up to 100)")],
    text: Annotated[str, typer.Option()],
    sender_id: Annotated[str | None, typer.Option()] = None,
    send_at: Annotated[str | None, typer.Option(help="ISO 8601 with a UTC offset, 5 minutes to 35 days ahead")] = None,
) -> None:
    """Send one text to one or more numbers."""
    body: dict[str, Any] = {"to": to if len(to) > 1 else to[0], "text": text}
    for key, value in (("sender_id", sender_id), ("send_at", send_at)):
        if value:
            body[key] = value
    accepted = _run(lambda: state.api.call("POST", "/v1/messages", json_body=body))
    lines = [f"Accepted {len(accepted['data'])} message(s); {accepted['credits_reserved']} credits reserved."]
    lines += [f"  {m['id']}  {m['to']}  {m['status']}" for m in accepted["data"]]
    _emit(accepted, "\n".join(lines))


@messages_app.command("list")
def list_messages(
    status: Annotated[str | None, typer.Option()] = None,
    to: Annotated[str | None, typer.Option()] = None,
    campaign_id: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 20,
) -> None:
    """Outbound messages, newest first."""
    params = {"status": status, "to": to, "campaign_id": campaign_id}
    found = _run(lambda: list(state.api.pages("/v1/messages", params, limit)))
    if state.json:
        _emit(found)
        return
    table = Table()
    for column in ("created", "to", "status", "segments", "text"):
        table.add_column(column)
    for m in found:
        table.add_row(m["created_at"][:19], m["to"], m["status"], str(m["segments"]), (m["body"] or "")[:40])
    Console().print(table)


@exports_app.command("create")
def create_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save the gzip CSV")],
    campaign_id: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 with a UTC offset")] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 with a UTC offset")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most")] = 1800,
) -> None:
    """Export messages, with the rows counted live, and download the file when it is built."""
    api = state.api
    body = {"kind": "messages", "campaign_id": campaign_id, "status": status, "since": since, "until": until}
    started = _run(lambda: api.call("POST", "/v1/exports", json_body={k: v for k, v in body.items() if v}))
    export_id = started["export_id"]

    def read() -> dict[str, Any]:
        return dict(_run(lambda: api.call("GET", f"/v1/exports/{export_id}")))

    def finished(found: dict[str, Any]) -> bool:
        return found["status"] in ("completed", "failed")

    if state.json:
        done = _run(lambda: api.wait(read, finished, 0.5, timeout))
    else:
        with Progress(TextColumn("[bold]export[/]"), TextColumn("{task.completed:,} rows"), TimeElapsedColumn(),
                      console=err) as progress:  # fmt: skip
            task = progress.add_task("export", total=None)

            def shown() -> dict[str, Any]:
                found = read()
                progress.update(task, completed=found["rows"])
                return found

            done = _run(lambda: api.wait(shown, finished, 0.5, timeout))
    if done["status"] != "completed":
        _emit(done, f"Export failed: {done.get('error_message')}")
        raise typer.Exit(Exit.FAILED)
    _run(lambda: _download(done["url"], output))
    _emit({**done, "output": str(output)}, f"Exported {done['rows']:,} messages to {output}.")


def _download(url: str, output: Path) -> None:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=300) as response, output.open("wb") as file:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                file.write(chunk)
    except httpx.HTTPError as exc:
        raise ApiError(Exit.UNAVAILABLE, f"The download failed: {exc}") from exc


@app.command("config")
def show_config() -> None:
    """Where the credential is stored, and the base URL in use (never the token)."""
    saved = load_config()
    _emit(
        {"config": str(config_path()), "base_url": state.api.base_url, "token_stored": bool(saved.get("token"))},
        f"{config_path()}: base URL {state.api.base_url}, token {'stored' if saved.get('token') else 'not stored'}",
    )


def run() -> None:
    app()


if __name__ == "__main__":
    run()
