"""`python -m local run`: the platform on this machine, until Ctrl-C."""

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from local import database
from local.console import Console
from local.stack import ROOT, LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the local stack")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "local")
    run.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    run.add_argument("--root", type=Path, default=ROOT, help="folder CodeUri and sql/ are relative to")
    run.add_argument(
        "--json-logs",
        action="store_true",
        help="print the functions' JSON logs and metrics as they come, instead of one line per request",
    )
    psql = commands.add_parser("psql", help="open psql on the local stack's database")
    psql.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "local")
    for name, text in (("dlq", "list the running stack's dead-letter queues"), ("redrive", "move one back")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "local")
        if name == "redrive":
            command.add_argument("queue")
        else:
            command.add_argument("--peek", type=int, default=3)
    inbound = commands.add_parser("inbound", help="a handset texts the running stack (the simulator's inbound webhook)")
    inbound.add_argument("--from", dest="from_number", required=True, help="the handset's number, E.164")
    inbound.add_argument("--to", dest="to_number", help="the number written to (an account's sender id)")
    inbound.add_argument("text")
    inbound.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "local")
    child = commands.add_parser("poller", help="one function's SQS poller (the stack starts these itself)")
    child.add_argument("function")
    child.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    child.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if args.command == "poller":
        from local.pollers import run_child

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        return run_child(args.function, args.template.resolve(), args.root.resolve())
    if args.command == "psql":
        return _psql(args.data_dir.resolve())
    if args.command in ("dlq", "redrive"):
        return _dead_letters(args)
    if args.command == "inbound":
        return _inbound(args)

    _quiet_libraries()
    console = None
    if not args.json_logs:  # everything but the console's lines goes to the log file
        console = Console.take_over(args.data_dir.resolve() / "logs" / "platform.log")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "pgserver", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stack = LocalStack(
        data_dir=args.data_dir.resolve(),
        port=args.port,
        host=args.host,
        template=args.template.resolve(),
        root=args.root.resolve(),
        database_url=os.environ.get("DATABASE_URL"),
        on_request=console.request if console else None,
    )
    say = console.say if console else print
    stopping = threading.Event()
    # SIGTERM ends the stack as cleanly as Ctrl-C, so the embedded database stops too.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # SIGUSR1 runs every schedule (the scheduler's tick, maintenance...) now rather than at its next turn.
    if hasattr(signal, "SIGUSR1"):  # not on Windows
        signal.signal(signal.SIGUSR1, lambda *_: stack.run_schedules_now())
    try:
        if console:
            console.follow()
            say(f"Starting the local stack (logs: {console.log_path})...")
        stack.start()
        say(_banner(stack, console.log_path if console else None))
        stopping.wait()
    except KeyboardInterrupt:
        pass
    except BaseException:
        if console:  # the traceback is in the log file; say where
            say(f"The local stack failed to start; see {console.log_path}")
        raise
    finally:
        say("\nStopping the local stack...")
        stack.stop()
        if console:
            console.stop()
    return 0


def _quiet_libraries() -> None:
    """Warnings a clean start would otherwise print: none of them is the user's to act on."""
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, under pgserver
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # Powertools, per invocation
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="botocore")


def _dead_letters(args: argparse.Namespace) -> int:
    """The layer's dead-letter command, pointed at the running local stack's SQS."""
    from local import aws
    from smsplatform.core import dead_letters

    endpoint_file = args.data_dir.resolve() / "aws-endpoint"
    if not endpoint_file.exists():
        print("the local stack is not running (make run)", file=sys.stderr)
        return 2
    sqs = aws.client("sqs", endpoint_file.read_text().strip())
    command = ["redrive", args.queue] if args.command == "redrive" else ["list", "--peek", str(args.peek)]
    return dead_letters.main(command, sqs=sqs)


def _inbound(args: argparse.Namespace) -> int:
    """Signs with the running stack's simulator secret and POSTs to its gateway."""
    import json

    from smsplatform.providers import simulator

    data_dir = args.data_dir.resolve()
    base_url_file, secrets_file = data_dir / "base-url", data_dir / "secrets.json"
    if not base_url_file.exists():
        print("the local stack is not running (make run)", file=sys.stderr)
        return 2
    key = json.loads(secrets_file.read_text())["SimulatorSigningSecret"]
    status = simulator.originate(
        base_url_file.read_text().strip(), key, simulator.inbound_body(args.from_number, args.to_number, args.text)
    )
    print(f"inbound webhook answered {status}")
    return 0 if status == 200 else 1


def _psql(data_dir: Path) -> int:
    """psql on the same database `run` uses (the embedded server's own psql when there is one)."""
    url = os.environ.get("DATABASE_URL")
    psql = shutil.which("psql") or "psql"
    if not url:
        import pgserver

        url = database.with_database(database.start_embedded(data_dir / "postgres"), database.DEFAULT_DATABASE)
        psql = str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")
    return subprocess.run([psql, url], check=False).returncode  # noqa: S603  # the user's own shell session


def _banner(stack: LocalStack, log_path: Path | None) -> str:
    url = stack.base_url
    lines = [
        "",
        f"Bulk SMS platform running at {url}  (Ctrl-C stops it)",
        f"  API docs:  {url}/v1/docs",
        f"  Database:  {stack.database_display}   (make psql opens it)",
        "  Text it:   make inbound FROM=+447400123101 TEXT=HELP   (a handset's message, through the simulator)",
        f"  Try it:    curl {url}/v1/health",
        f"  Sign up:   curl -X POST {url}/v1/auth/signup -H 'content-type: application/json' \\",
        "               -d '"
        + '{"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}'
        + "'",
    ]
    if stack.admin and stack.admin.generated_password:
        lines += [
            "",
            f"  Operator account created: login '{stack.admin.username}', password {stack.admin.generated_password}",
            "  (shown once; set SMS_ADMIN_EMAIL and SMS_ADMIN_PASSWORD to choose them)",
        ]
    lines += (
        ["", f"  One line per request below; the functions' JSON logs and metrics: {log_path}", ""]
        if log_path
        else [""]
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
