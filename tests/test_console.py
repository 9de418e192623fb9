"""The web console in a real headless Chromium (Debian's `chromium`, driven by playwright), against the real API,
Temporal, PostgreSQL and a worker: sign in, approve a waiting permission, review a sandbox run, lock down and release,
follow a request's streamed answer and timeline. Assertions are on what the page shows."""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from domain.permissions import Actor, Operation, PermissionRequest
from domain.sandbox import Origin, SandboxSpec
from hybrid_llm import permission_client, sandbox_client
from tests.conftest import scripted
from tests.openai_api import serve_api

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        try:
            yield browser
        finally:
            await browser.close()


async def until(check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while not (result := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return result


async def sign_in(page, key: str, name: str) -> None:
    """Sign in by keyboard: type the key, Tab to the button, Enter."""
    from playwright.async_api import expect

    await expect(page.get_by_label("API key")).to_be_focused()
    await page.keyboard.type(key)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#whoami")).to_contain_text(f"Signed in as test-{name}")
    assert await page.evaluate("sessionStorage.getItem('hybrid-llm-key')") == key


async def sign_out(page) -> None:
    from playwright.async_api import expect

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API key")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('hybrid-llm-key')") is None


async def test_console_end_to_end(browser, client, settings, api_keys, run_worker, scripted_pool, lockdown_secret,
                                  tmp_path):
    import httpx
    from playwright.async_api import expect

    from tests.conftest import bearer

    policy = tmp_path / "policy.toml"
    policy.write_text('[model]\nrules = []\n[model.unmatched]\nnetwork = "ask"\n')
    settings.permissions_file = policy
    for name in ("downloads", "uploads", "rag"):
        (settings.root / name).mkdir(parents=True, exist_ok=True)
    pool = scripted_pool(scripted("echo", reply="streamed: {prompt}", token_delay_ms=20))
    async with run_worker(pool), serve_api(settings) as base_url:
        permission = await permission_client.request_permission(client, settings, PermissionRequest(
            actor=Actor.MODEL, operation=Operation.NETWORK, model_id="coder", host="docs.example.org",
            explanation="read the \u202edocs"))
        sandbox = await sandbox_client.start(client, settings, SandboxSpec(
            command=("/bin/sh", "-c", "printf 'hello \\033[31mred\\n'; echo result > out.txt"),
            origin=Origin(actor="user", name="pytest")))
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(api_keys["user"][1])) as http:
            submitted = await http.post("/v1/requests", json={"prompt": "tell me about tides", "stream": True})
            assert submitted.status_code == 202, submitted.text
        request_id = submitted.json()["request_id"]
        await until(lambda: permission_client.pending(client, settings))

        page = await browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base_url}/console")

        # A wrong key is refused, and the page says so.
        await page.get_by_label("API key").fill("hlk_wrong")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#signin-error")).to_contain_text("refused")

        # The user: their request in the live list; its streamed answer and its audit timeline.
        await sign_in(page, api_keys["user"][1], "user")
        await expect(page.get_by_role("heading", name="Approvals waiting")).to_be_hidden()  # not an approver
        await expect(page.get_by_role("button", name="Panic: lock down now")).to_be_hidden()  # not an operator
        await page.get_by_role("button", name=request_id).click()
        await expect(page.locator("#detail-title")).to_be_focused()
        await expect(page.locator("#detail-answer")).to_have_text("streamed: tell me about tides", timeout=30_000)
        await expect(page.locator("#detail-timeline")).to_contain_text("model_call")
        await expect(page.locator("#requests-body")).to_contain_text("completed")
        await sign_out(page)

        # The approver: the approvals queue (a hidden bidi character shown escaped); approve with a note.
        await sign_in(page, api_keys["approver"][1], "approver")
        card = page.locator(f'#approvals-list li[data-workflow-id="{permission.id}"]')
        await expect(card).to_contain_text("docs.example.org")
        await expect(card).to_contain_text("read the \\u202edocs")
        await card.get_by_label("Note").fill("docs only")
        await card.get_by_role("button", name="Approve").click()
        await expect(page.locator("#approvals-status")).to_contain_text(f"Approve {permission.id}")
        await expect(card).to_have_count(0)  # decided: it left the queue
        outcome = await asyncio.wait_for(permission.result(), 30)
        assert outcome.decision.decision == "allow" and "docs only" in outcome.decision.reason
        assert "test-approver" in outcome.decided_by  # recorded as the signed-in approver

        # The sandbox review: code, output (the escape character shown escaped), files; approve the output.
        review = page.locator(f'#sandboxes-list li[data-workflow-id="{sandbox.id}"]')
        await expect(review.locator("pre.code")).to_contain_text("printf", timeout=30_000)
        # Shown escaped (by the sandbox's output capture or by the page), never as a raw control character.
        await expect(review.locator("pre.stdout")).to_have_text(re.compile(r"hello \\(x1b|u001b)\[31mred"))
        assert "\x1b" not in await review.locator("pre.stdout").text_content()
        await expect(review).to_contain_text("out.txt")
        await review.get_by_role("button", name="Approve output").click()
        await expect(page.locator("#sandboxes-status")).to_contain_text(f"Approve output {sandbox.id}")
        await expect(review).to_have_count(0)
        done = await asyncio.wait_for(sandbox.result(), 30)
        assert done.status == "approved" and "test-approver" in (done.decided_by or "")
        await sign_out(page)

        # The operator: the panic button, then the release with the secret.
        await sign_in(page, api_keys["operator"][1], "operator")
        await page.get_by_label("Reason").fill("console drill")
        await page.get_by_role("button", name="Panic: lock down now").click()
        await expect(page.locator("#lockdown-status")).to_contain_text("LOCKED")
        await expect(page.locator("#lockdown-status")).to_contain_text("console drill")
        await asyncio.sleep(2.1)  # releases too soon after a lockdown change are refused (rate limit)
        await page.get_by_label("Release secret").fill(lockdown_secret)
        await page.get_by_role("button", name="Release").click()
        await expect(page.locator("#lockdown-status")).to_contain_text("Not locked", timeout=15_000)
        assert not errors, errors
