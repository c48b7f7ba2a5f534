"""The dashboard's web application (aiohttp): routes, the live WebSocket, ``serve``.

    GET /                      the live page
    GET /live.ws               WebSocket: one JSON message per change of the live
                               status (``host.dashboard.live``), >= 1 a second
    GET /sessions              the stored sessions
    GET /sessions/{id}/report  the session's report (``host.export.report``)
    GET /sessions/{id}/{name}.csv  samples, strokes, dwells or events (docs/csv.md)
    GET /trends, /trends.csv   per-week figures (``host.dashboard.trends``)
    GET /static/{name}         the stylesheet and the live page's script

The store is read in worker threads, each request on its own read-only connection
(``host.dashboard.readonly``), so a slow page never stalls the live feed. Whatever goes
wrong is a page saying so with its status (404 unknown page or session, 503 a store
that is busy or unusable, 500 anything else, logged), never a traceback. Only GET
(and HEAD) is served; nothing is ever written.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from host.dashboard.live import LiveFeed
from host.dashboard.pages import Back, error_page, live_page, sessions_page, trends_page
from host.dashboard.readonly import StoreUnavailable, UnknownSession, read_store
from host.dashboard.trends import FigureCache, session_rows, trends_csv, weekly
from host.store import Store

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "make_app", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATIC = Path(__file__).with_name("static")
CSV_NAMES = ("samples", "strokes", "dwells", "events")

log = logging.getLogger("smartroller.dashboard")
T = TypeVar("T")

DATA_DIR = web.AppKey("data_dir", Path)
FEED = web.AppKey("feed", LiveFeed)
CACHE = web.AppKey("cache", FigureCache)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


async def _in_thread(request: web.Request, work: Callable[[Store], T]) -> T:
    """``work(store)`` on a read-only store, in a worker thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, read_store, request.app[DATA_DIR], work)


@web.middleware
async def _pages_for_errors(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnknownSession as exc:
        return _html(error_page(404, "Unknown session",
                                f"{str(exc).capitalize()}: see the list of sessions."), 404)
    except StoreUnavailable as exc:
        status = 200 if exc.kind == "missing" else 503
        return _html(error_page(status, exc.title, str(exc)), status)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _html(error_page(404, "Not found",
                                    f"There is no page {request.path}."), 404)
        if exc.status >= 400:
            return _html(error_page(exc.status, exc.reason, exc.text or exc.reason),
                         exc.status)
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("dashboard: %s %s failed", request.method, request.path)
        return _html(error_page(500, "Something went wrong",
                                "The dashboard could not make this page; the server's log "
                                "says why. Reload to try again."), 500)


def _session_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not re.fullmatch(r"[1-9][0-9]{0,17}", text):
        raise UnknownSession(f"no session {text[:40]!r}")
    return int(text)


def _back(store: Store) -> Back:
    from host.daemon.keeper import user_model

    profile = store.active_profile()
    if profile is None:
        return Back.of(None, None, False)
    user = user_model(profile)
    return Back.of(user.body(), profile.name, user.calibrated)


async def live(request: web.Request) -> web.Response:
    """The live page."""
    try:
        back = await _in_thread(request, _back)
    except StoreUnavailable:  # nothing recorded yet, or busy: the average back
        back = Back.of(None, None, False)
    return _html(live_page(back))


async def live_ws(request: web.Request) -> web.WebSocketResponse:
    """The live feed's WebSocket (messages: ``host.dashboard.live``)."""
    ws = web.WebSocketResponse(heartbeat=10.0)
    await ws.prepare(request)
    feed = request.app[FEED]
    queue = feed.subscribe()

    async def reader() -> None:
        async for msg in ws:  # the page says nothing; this notices when it leaves
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break

    reading = asyncio.create_task(reader())
    try:
        while not ws.closed and not reading.done():
            getting = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getting, reading},
                                         return_when=asyncio.FIRST_COMPLETED)
            if getting not in done:
                getting.cancel()
                break
            await ws.send_str(getting.result())
    except (ConnectionResetError, RuntimeError):
        pass  # the page went away
    finally:
        feed.unsubscribe(queue)
        reading.cancel()
    return ws


async def sessions(request: web.Request) -> web.Response:
    """The list of sessions."""
    summaries, calibrated = await _in_thread(
        request, lambda store: (store.summaries(), store.calibrated_sessions()))
    return _html(sessions_page(summaries, calibrated))


def _report(session_id: int, store: Store) -> str:
    from host.export.report import render_report

    session = store.session(session_id)
    profile = store.profile_by_id(session.profile_id) if session.profile_id else None
    return render_report(store.load(session_id), profile.name if profile else None)


async def report(request: web.Request) -> web.Response:
    """One session's report."""
    return _html(await _in_thread(request, partial(_report, _session_id(request))))


def _session_csv(session_id: int, name: str, store: Store) -> str:
    from host.export import csv as export

    data = store.load(session_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if name == "samples":
        zone_count = data.frames.zones.shape[1] if len(data.frames) else (
            data.session.zone_count or 0)
        writer.writerow(export.sample_header(zone_count))
        writer.writerows(export.sample_rows(data))
    else:
        header = {"strokes": export.STROKE_HEADER, "dwells": export.DWELL_HEADER,
                  "events": export.EVENT_HEADER}[name]
        rows = {"strokes": export.stroke_rows, "dwells": export.dwell_rows,
                "events": export.event_rows}[name](data)
        writer.writerow(header)
        writer.writerows(rows)
    return out.getvalue()


async def session_csv(request: web.Request) -> web.Response:
    """One of a session's CSV files, as a download."""
    sid, name = _session_id(request), request.match_info["name"]
    if name not in CSV_NAMES:
        raise web.HTTPNotFound()
    text = await _in_thread(request, partial(_session_csv, sid, name))
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="session-{sid}-{name}.csv"'})


async def trends(request: web.Request) -> web.Response:
    """The per-week figures."""
    cache = request.app[CACHE]
    rows = await _in_thread(request, lambda store: session_rows(store, cache))
    return _html(trends_page(weekly(rows)))


async def trends_download(request: web.Request) -> web.Response:
    """The per-week figures as CSV."""
    cache = request.app[CACHE]
    rows = await _in_thread(request, lambda store: session_rows(store, cache))
    return web.Response(text=trends_csv(weekly(rows)), content_type="text/csv",
                        charset="utf-8", headers={
                            "Content-Disposition": 'attachment; filename="trends.csv"'})


_STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.is_file()}
_TYPES = {".css": "text/css", ".js": "text/javascript"}


async def static(request: web.Request) -> web.Response:
    """One of the files shipped in ``static/`` (nothing else: no path leaves it)."""
    path = _STATIC_FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=_TYPES.get(path.suffix,
                        "application/octet-stream"), charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


def make_app(data_dir: Path) -> web.Application:
    """The dashboard over ``data_dir`` (the daemon's data directory)."""
    app = web.Application(middlewares=[_pages_for_errors])
    app[DATA_DIR] = Path(data_dir)
    app[CACHE] = FigureCache()

    async def profile() -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        try:
            back = await loop.run_in_executor(None, read_store, Path(data_dir), _back)
        except StoreUnavailable:
            return None
        return back.as_dict() if back.profile else None

    app[FEED] = LiveFeed(Path(data_dir), profile)

    async def start_feed(app: web.Application) -> None:
        app[FEED].start()

    async def stop_feed(app: web.Application) -> None:
        await app[FEED].stop()

    app.on_startup.append(start_feed)
    app.on_cleanup.append(stop_feed)
    app.router.add_get("/", live)
    app.router.add_get("/live.ws", live_ws)
    app.router.add_get("/sessions", sessions)
    app.router.add_get("/sessions/{id}/report", report)
    app.router.add_get("/sessions/{id}/{name}.csv", session_csv)
    app.router.add_get("/trends", trends)
    app.router.add_get("/trends.csv", trends_download)
    app.router.add_get("/static/{name}", static)
    return app


async def serve(data_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                stop: asyncio.Event | None = None,
                ready: Callable[[str], None] | None = None) -> None:
    """Serve the dashboard on ``host:port`` until ``stop`` is set (forever without);
    ``ready(url)`` is called once it listens. OSError when the port cannot be bound."""
    runner = web.AppRunner(make_app(data_dir), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if ready is not None:
            shown = f"[{host}]" if ":" in host else host
            ready(f"http://{shown}:{port}/")
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
