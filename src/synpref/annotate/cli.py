"""``synpref annotate``: serve the verification app, manage accounts, export decisions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .db import default_url, make_engine


def _engine(run_dir: str, db: str | None):
    from . import migrate

    engine = make_engine(db or default_url(run_dir))
    migrate.upgrade(engine)
    return engine


_run_dir = click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
_db = click.option("--db", "db", metavar="URL", help="Database URL (default: sqlite in RUN_DIR/verification/annotate.sqlite; postgresql://user@host/db for teams).")


@click.group("annotate", context_settings={"help_option_names": ["-h", "--help"]})
def annotate_group() -> None:
    """Human verification of pairs: web app, accounts, export to the curation run."""


@annotate_group.command()
@_run_dir
@_db
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("-k", "--annotators-per-pair", "k", default=2, show_default=True, help="Annotators who decide each pair.")
@click.option("--gold-every", default=10, show_default=True, help="One gold check item after every N decisions (0: none).")
@click.option("--lease-minutes", default=30, show_default=True, help="An undecided assignment frees its slot after this.")
@click.option("--secure-cookies", is_flag=True, help="Mark cookies Secure (serve behind HTTPS). Without it on a non-loopback --host, a warning is printed at start.")
@click.option("--max-body-kb", default=64, show_default=True, help="Larger requests are refused with 413.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR",
              help="A reverse proxy (IP or CIDR network, repeatable) whose X-Forwarded-For is believed for the per-client "
                   "login limit. Default: none, the header is ignored.")
def serve(run_dir, db, host, port, k, gold_every, lease_minutes, secure_cookies, max_body_kb, trusted_proxies):
    """Serve the annotation app for RUN_DIR (imports its pending batches on start)."""
    import uvicorn

    from .app import create_app
    from .assign import Policy
    from .config import AnnotateConfig
    from .security import insecure_cookie_warning

    try:
        config = AnnotateConfig(run_dir=run_dir, db_url=db or default_url(run_dir), policy=Policy(k, gold_every, lease_minutes),
                                secure_cookies=secure_cookies, max_body_bytes=max_body_kb * 1024, trusted_proxies=tuple(trusted_proxies))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--trusted-proxy") from None
    warning = insecure_cookie_warning(host, secure_cookies)
    if warning:
        banner = "!" * 78
        click.echo(f"{banner}\n{warning}\n{banner}", err=True)
    app = create_app(config)
    click.echo(f"synpref annotate: http://{host}:{port}/  (run {run_dir}, k={k})", err=True)
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; the app
    # reads it itself, and only from --trusted-proxy addresses.
    uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False, proxy_headers=False,
                h11_max_incomplete_event_size=16 * 1024)


@annotate_group.group()
def users() -> None:
    """Manage accounts (admin and annotator roles)."""


@users.command("add")
@_run_dir
@click.argument("username")
@_db
@click.option("--role", type=click.Choice(["annotator", "admin"]), default="annotator", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted for when not given.")
def users_add(run_dir, username, db, role, password):
    """Create an account."""
    from .users import UserError, add_user

    try:
        add_user(_engine(run_dir, db), username, password, role)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"added {role} {username}")


@users.command("list")
@_run_dir
@_db
def users_list(run_dir, db):
    """List accounts."""
    from .users import list_users

    for u in list_users(_engine(run_dir, db)):
        click.echo(f"{u['username']}\t{u['role']}\t{'active' if u['active'] else 'disabled'}")


@users.command("disable")
@_run_dir
@click.argument("username")
@_db
@click.option("--enable", is_flag=True, help="Re-enable instead.")
def users_disable(run_dir, username, db, enable):
    """Disable an account (ends its sessions; its decisions stay)."""
    from .users import UserError, set_active

    try:
        set_active(_engine(run_dir, db), username, enable)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{'enabled' if enable else 'disabled'} {username}")


@annotate_group.command("import")
@_run_dir
@_db
def import_cmd(run_dir, db):
    """Import pending batches and check items from RUN_DIR (idempotent)."""
    from ..verification import verification_dir
    from .importer import import_run

    if not verification_dir(run_dir).is_dir():
        raise click.UsageError(f"{run_dir} has no verification/ folder, so no batches to import: "
                               "write one with synpref curate export-verification RUN_DIR")

    click.echo(json.dumps(import_run(_engine(run_dir, db), run_dir).as_dict(), indent=2))


@annotate_group.command()
@_run_dir
@_db
@click.option("-k", "--annotators-per-pair", "k", default=2, show_default=True, help="Export pairs decided by at least k annotators.")
@click.option("--all", "everything", is_flag=True, help="Write every current decision again, not only new ones.")
def export(run_dir, db, k, everything):
    """Write decisions of completed pairs to RUN_DIR/verification/decisions/."""
    from ..verification import verification_dir
    from .export import export_decisions

    if not verification_dir(run_dir).is_dir():
        raise click.UsageError(f"{run_dir} has no verification/ folder, so no decisions to export: give the curation run "
                               "folder the annotation app serves")

    path = export_decisions(_engine(run_dir, db), run_dir, k=k, everything=everything)
    click.echo(str(path) if path else "nothing new to export")


if __name__ == "__main__":
    annotate_group()
