"""The playground page in a real headless Chromium against a real daemon (mock backend, API keys on).

One test walks a user's path through the page, checking what the user sees at each step and what the server
did: the key prompt and the 401 shown, the key kept in sessionStorage (never the URL), a streamed echo with
its TTFT and tokens/s, Stop cancelling a long answer (the server's slot frees, the backend counts a
cancellation), an error rendered from the server's error body, and the layout on a narrow screen. Screenshots
go to the test's temp dir.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from proxy.playground import CONTENT_SECURITY_POLICY
from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon, wait_until

from .browser import Browser, require_browser

LONG_PROMPT = " ".join(f"word{i}" for i in range(80))


async def run(fn, *args):  # type: ignore[no-untyped-def]
    return await trio.to_thread.run_sync(partial(fn, *args))


async def test_a_user_chats_streams_stops_and_sees_errors_in_the_page(tmp_path: Path) -> None:
    require_browser()
    config = keyed_config(mock_config(token_delay_ms=100))
    with trio.fail_after(120):
        async with running_daemon(config) as d:
            async with d.http(api_key="") as http:
                page = await http.get("/")
            assert page.status_code == 200
            assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert page.headers["content-type"].startswith("text/html")

            browser: Browser = await trio.to_thread.run_sync(Browser)
            try:
                await run(browser.open, d.inference_url + "/")
                # No key yet: the model list is refused, the page says so and shows the key field.
                error = await run(
                    browser.wait_for, lambda: browser.find("error").is_displayed() and browser.find("error")
                )
                assert "HTTP 401" in error.text and "invalid_api_key" in error.text
                assert browser.find("key-row").is_displayed()

                await run(browser.find("api-key").send_keys, TEST_KEY)
                await run(browser.find("save-key").click)
                await run(browser.wait_for, lambda: browser.texts("#model option") == ["mock-echo"])
                assert not browser.find("error").is_displayed()
                stored = browser.driver.execute_script("return sessionStorage.getItem('trinfer.apiKey')")
                assert stored == TEST_KEY
                assert TEST_KEY not in browser.driver.current_url

                # A streamed echo, with its timing under the answer.
                await run(browser.find("prompt").send_keys, "hello streaming world")
                await run(browser.find("send").click)
                await run(
                    browser.wait_for,
                    lambda: (
                        browser.texts(".turn.assistant .stats") and browser.texts(".turn.assistant .stats")[-1]
                    ),
                )
                assert browser.texts(".turn.user .content") == ["hello streaming world"]
                assert browser.texts(".turn.assistant .content") == ["hello streaming world"]
                stats = browser.texts(".turn.assistant .stats")[-1]
                assert "TTFT" in stats and "tok/s" in stats and "3 tokens" in stats
                await run(browser.screenshot, tmp_path / "answer.png")

                # A long answer, stopped after a few tokens: the generation is cancelled and the slot frees.
                await run(browser.find("prompt").send_keys, LONG_PROMPT)
                await run(browser.find("send").click)
                await run(
                    browser.wait_for,
                    lambda: (
                        len(browser.texts(".turn.assistant .content")) == 2
                        and len(browser.texts(".turn.assistant .content")[-1].split()) >= 3
                    ),
                )
                assert d.admission().active == 1
                await run(browser.find("stop").click)
                await run(browser.wait_for, lambda: "stopped" in browser.texts(".turn.assistant .stats")[-1])
                with trio.fail_after(10):
                    await wait_until(lambda: d.admission().active == 0 and d.backend_status()["cancelled"] == 1)
                partial_answer = browser.texts(".turn.assistant .content")[-1]
                assert LONG_PROMPT.startswith(partial_answer) and len(partial_answer) < len(LONG_PROMPT)
                assert d.backend_status()["completed"] == 1
                assert browser.find("send").is_enabled() and not browser.find("stop").is_enabled()

                # A request the server refuses: the error body is rendered, nothing is added to the talk.
                temperature = browser.find("temperature")
                await run(temperature.clear)
                await run(temperature.send_keys, "5")
                await run(browser.find("prompt").send_keys, "too hot")
                await run(browser.find("send").click)
                error = await run(
                    browser.wait_for, lambda: browser.find("error").is_displayed() and browser.find("error")
                )
                assert "HTTP 400" in error.text and "temperature" in error.text
                assert len(browser.texts(".turn.assistant")) == len(browser.texts(".turn.user")) == 2
                assert browser.find("prompt").get_attribute("value") == "too hot"
                await run(browser.screenshot, tmp_path / "error.png")

                # A narrow screen: settings stack above the conversation, nothing wider than the window.
                await run(browser.driver.set_window_size, 390, 844)
                settings, chat = browser.find("settings").rect, browser.find("chat").rect
                assert settings["y"] < chat["y"]
                width = browser.driver.execute_script("return document.documentElement.clientWidth")
                scroll = browser.driver.execute_script("return document.documentElement.scrollWidth")
                assert scroll <= width
                await run(browser.screenshot, tmp_path / "narrow.png")
                assert browser.console_errors() == [] or all(
                    "401" in e or "400" in e for e in browser.console_errors()
                ), browser.console_errors()
            finally:
                await trio.to_thread.run_sync(browser.close)
