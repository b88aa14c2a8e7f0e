"""The FastAPI application: wiring, security headers, login and logout.

Pages and API live in ``routes_*``; nothing is served without a session except
the login page and the static CSS/JS.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from ..http_limits import BodyLimitMiddleware
from . import migrate
from .auth import NotLoggedIn, current_user, load_user
from .config import AnnotateConfig
from .db import make_engine
from .importer import import_run
from .security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, LoginLimiter, client_address, end_session, new_session, same_token
from .users import authenticate

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

PUBLIC_PATHS = ("/login", "/logout", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def create_app(config: AnnotateConfig, engine=None) -> FastAPI:
    """Build the app; migrates the database and imports pending batches first."""
    engine = engine or make_engine(config.db_url)
    migrate.upgrade(engine)
    if config.import_on_start:
        report = import_run(engine, config.run_dir)
        log.info("import on start: %s", report.as_dict())
    app = FastAPI(title="synpref annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.config = engine, config
    app.state.limiter = LoginLimiter(engine, config.login_max_failures, config.login_window_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)

    @app.middleware("http")
    async def login_gate(request: Request, call_next):
        """Resolve the session once; refuse everything but the login page and static files without one."""
        request.state.user = await run_in_threadpool(load_user, request)
        if request.state.user is None and not _is_public(request.url.path):
            if request.url.path.startswith("/api/"):
                response = JSONResponse({"detail": "login required"}, status_code=401)
            else:
                response = RedirectResponse("/login", status_code=303)
        else:
            response = await call_next(request)
        for k, v in _SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(NotLoggedIn)
    async def _not_logged_in(request: Request, _exc):
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    from . import routes_admin, routes_annotator, routes_api

    app.include_router(routes_annotator.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_api.router)
    _add_login_routes(app, config)
    return app


def set_cookie(response: Response, config: AnnotateConfig, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=config.secure_cookies, path="/")


def _add_login_routes(app: FastAPI, config: AnnotateConfig) -> None:
    def login_page(request: Request, error: str | None = None, status: int = 200):
        # Reuse the browser's token: a second GET /login (another tab, a favicon redirect)
        # must not invalidate the form already shown.
        token = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not token or len(token) != 43:
            token = secrets.token_urlsafe(32)
        response = templates.TemplateResponse(request, "login.html", {"csrf_token": token, "error": error, "user": None}, status_code=status)
        set_cookie(response, config, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    @app.get("/login")
    def login_form(request: Request):
        return login_page(request)

    @app.post("/login")
    def login(request: Request, username: str = Form(..., max_length=64), password: str = Form(..., max_length=256), csrf_token: str = Form(..., max_length=128)):
        if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
            return login_page(request, "Your login form expired; please try again.", 403)
        limiter: LoginLimiter = request.app.state.limiter
        peer = request.client.host if request.client else None
        client = client_address(peer, request.headers.getlist("x-forwarded-for"), config.trusted_proxy_networks)
        client_key, account_key = f"ip:{client}", f"user:{username.lower()}"
        wait = limiter.admit(client_key, account_key)  # atomic: at most login_max_failures passwords get tried
        if wait > 0:
            response = login_page(request, "Too many failed logins; wait a few minutes.", 429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = None
        try:
            user = authenticate(request.app.state.engine, username, password)
        finally:  # an error while checking counts as a failure
            limiter.settle(client_key, account_key, succeeded=user is not None)
        if user is None:
            return login_page(request, "Wrong username or password.", 401)
        token = new_session(request.app.state.engine, user.id, config.session_hours)
        response = RedirectResponse("/admin" if user.role == "admin" else "/annotate", status_code=303)
        set_cookie(response, config, SESSION_COOKIE, token, max_age=int(config.session_hours * 3600))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout(request: Request):
        """Always ends the session server-side, CSRF token or not.

        Logout needs no token: a forged logout can only log someone out (and the
        SameSite=Strict cookie already keeps other sites from sending it), while
        refusing one would leave a live session behind a cleared cookie.
        """
        token = request.cookies.get(SESSION_COOKIE)
        if token and len(token) <= 128:
            end_session(request.app.state.engine, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.get("/")
    def home(request: Request):
        user = current_user(request)
        return RedirectResponse("/admin" if user.is_admin else "/annotate", status_code=303)
