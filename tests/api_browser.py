"""Headless Chromium driven over the DevTools protocol (CDP), with aiohttp's websocket client.

No WebDriver and nothing downloaded: Debian's `chromium` is started with
`--remote-debugging-port=0`; the browser says where it listens on stderr.

    browser = await Chromium.launch(tmp_path)
    page = await browser.new_page("http://127.0.0.1:8080/")
    await page.evaluate("document.title")
    await page.click("#theme-toggle")        # a real mouse click at the element's centre
    await browser.close()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
)


def chromium_binary() -> str:
    """The browser, or: skip the test (a failure under CI=true, where it must be installed)."""
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    reason = "headless Chromium not installed (Debian packages: chromium chromium-driver)"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


class CdpError(RuntimeError):
    pass


class Chromium:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
    ) -> None:
        self.process, self._http, self._ws = process, http, ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    @classmethod
    async def launch(cls, profile: Path) -> Chromium:
        binary = chromium_binary()
        process = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        try:
            async with asyncio.timeout(30):
                while True:
                    line = (await process.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise RuntimeError("chromium exited before it listened")
                    if match := re.search(r"DevTools listening on (ws://\S+)", line):
                        break
        except BaseException:
            process.kill()
            await process.wait()
            raise
        asyncio.create_task(_drain(process.stderr))  # noqa: RUF006 - ends with the process
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(match.group(1), max_msg_size=64 * 1024 * 1024)
        return cls(process, http, ws)

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data and (future := self._waiting.pop(data["id"], None)) is not None:
                if "error" in data:
                    future.set_exception(CdpError(str(data["error"])))
                else:
                    future.set_result(data.get("result", {}))
            elif "method" in data:
                self.events.append(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(CdpError("browser connection closed"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        payload: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            payload["sessionId"] = session
        await self._ws.send_str(json.dumps(payload))
        async with asyncio.timeout(30):
            return await future

    async def new_page(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            await page.send(domain)
        await page.send("Page.navigate", {"url": url})
        await page.loaded()
        return page

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (CSP violations among them)."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(json.dumps(params.get("args", []))[:500])
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"{entry.get('source')}: {entry.get('text')} ({entry.get('url', '')})"[:500])
        return found

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close")
        await self._ws.close()
        await self._http.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self.process.returncode is None:
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser, self.session = browser, session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    async def loaded(self, timeout: float = 20.0) -> None:
        """Wait until the navigation is done: the page's document, completely loaded."""
        deadline = asyncio.get_running_loop().time() + timeout
        check = "document.readyState === 'complete' && location.href !== 'about:blank'"
        while not await self.evaluate(check):
            if asyncio.get_running_loop().time() > deadline:
                raise CdpError(f"page not loaded after {timeout}s")
            await asyncio.sleep(0.05)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise CdpError(json.dumps(result["exceptionDetails"])[:500])
        return result["result"].get("value")

    async def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (scrolled into view)."""
        box = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        if box is None:
            raise CdpError(f"nothing matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
