"""The dashboard in a real headless Chromium, against a real Redis and a real Server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import tickr
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import ServerFactory
from tests.helpers import eventually
from tests.integration.web_support import Running
from tickr.web import Token, create_app

ADMIN = "dashboard-admin-0123456789"
READER = "dashboard-reader-0123456789"
TOKENS = [
    Token("ops", secret=ADMIN, scopes=["admin"]),
    Token("viewer", secret=READER, scopes=["tasks:read"]),
]


@pytest.fixture
def base_url(url: str, namespace: str) -> Iterator[str]:
    with Running(create_app(url, namespace=namespace, tokens=TOKENS)) as base:
        yield base


def log_in(browser: webdriver.Chrome, base: str, secret: str, then: str = "/") -> None:
    browser.get(base + then)
    assert "/login" in browser.current_url, "without a session, pages lead to the login"
    browser.find_element(By.ID, "token").send_keys(secret)
    browser.find_element(By.CSS_SELECTOR, ".login button").click()
    WebDriverWait(browser, 10).until(lambda b: "/login" not in b.current_url)


def shot(browser: webdriver.Chrome, name: str) -> None:
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def cell_text(browser: webdriver.Chrome, selector: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def wait_text(browser: webdriver.Chrome, selector: str, text: str) -> None:
    """Wait for the page a click led to (a form's POST, then its redirect)."""

    def shown(driver: webdriver.Chrome) -> bool:
        return any(
            text in element.text for element in driver.find_elements(By.CSS_SELECTOR, selector)
        )

    settled(browser, 10).until(shown)


def settled(browser: webdriver.Chrome, seconds: float) -> WebDriverWait[webdriver.Chrome]:
    """A wait that reads again when the page's live refresh replaced what it read."""
    return WebDriverWait(browser, seconds, ignored_exceptions=(StaleElementReferenceException,))


async def test_log_in_and_watch_a_queue_drain_live(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client,
    running_server: ServerFactory,
) -> None:  # fmt: skip
    browser = fresh_browser
    await _enqueue(client, 12)
    log_in(browser, base_url, ADMIN, "/queues/default")
    assert browser.current_url.endswith("/queues/default"), "back where the login began"
    pending = '.tabs a[data-state="pending"] .count'
    assert cell_text(browser, pending) == "12"
    cookie = browser.get_cookie("tickr_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shot(browser, "queue")

    async def quick(task: tickr.Task) -> str:
        return "done"

    async with running_server(quick):
        drained = settled(browser, 20).until
        await asyncio.to_thread(drained, lambda b: cell_text(b, pending) == "0")
    assert browser.execute_script("return document.body.dataset.refreshed") is not None, (
        "the count changed by the page's own refresh, not a reload"
    )
    browser.get(base_url + "/")
    shot(browser, "overview")
    assert "default" in cell_text(browser, "table.queues")


async def _enqueue(client: tickr.Client, count: int) -> None:
    for number in range(count):
        await client.enqueue("email:send", {"n": number})


async def test_open_a_task_archive_it_and_run_it_again(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client
) -> None:
    browser = fresh_browser
    info = await client.enqueue("report:build", {"day": "monday"}, delay=3600)
    log_in(browser, base_url, ADMIN, "/queues/default?state=scheduled")
    browser.find_element(By.LINK_TEXT, info.id).click()
    assert "scheduled" in cell_text(browser, "h1")
    shot(browser, "task")
    browser.find_element(By.XPATH, "//button[text()='Archive']").click()
    wait_text(browser, ".notice", f"Task {info.id} archived.")
    assert "archived" in cell_text(browser, "h1")
    browser.find_element(By.XPATH, "//button[text()='Run']").click()
    wait_text(browser, ".notice", "is pending now")
    assert "pending" in cell_text(browser, "h1")
    assert (await client.get_task(info.id)).state == "pending"


async def test_a_form_without_its_csrf_token_is_refused(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client,
    inspector: tickr.Inspector,
) -> None:  # fmt: skip
    browser = fresh_browser
    await client.enqueue("t", 1)
    log_in(browser, base_url, ADMIN, "/queues/default")
    browser.execute_script(
        "document.querySelectorAll('.heading form input[name=csrf]').forEach(e => e.remove())"
    )
    browser.find_element(By.XPATH, "//button[text()='Pause']").click()
    wait_text(browser, "h1", "CSRF token is missing")
    assert not (await inspector.queue_info("default", memory=False)).paused, "nothing changed"


async def test_a_read_only_token_sees_no_action_and_cannot_post_one(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client
) -> None:
    browser = fresh_browser
    info = await client.enqueue("t", {"secret": "hunter2"}, delay=3600)
    log_in(browser, base_url, READER, "/queues/default?state=scheduled")
    assert browser.find_elements(By.CSS_SELECTOR, "main form[method=post]") == []
    assert browser.find_elements(By.CSS_SELECTOR, 'input[name="ids"]') == []
    browser.get(f"{base_url}/queues/default/tasks/{info.id}")
    assert browser.find_elements(By.CSS_SELECTOR, "main form[method=post]") == []
    assert "hunter2" not in browser.page_source, "no payload:read, no payload"
    assert "lacks the payload:read scope" in cell_text(browser, "main")
    csrf = browser.find_element(By.CSS_SELECTOR, "header input[name=csrf]").get_attribute("value")
    browser.execute_script(
        "const f = document.createElement('form'); f.method = 'post';"
        f"f.action = '/queues/default/tasks/{info.id}/archive';"
        f"f.innerHTML = '<input name=csrf value={csrf}>'; document.body.append(f); f.submit();"
    )
    WebDriverWait(browser, 10).until(lambda b: "tasks:manage" in b.page_source)
    assert (await client.get_task(info.id)).state == "scheduled"
    browser.get(base_url + "/audit")
    wait_text(browser, "h1", "lacks the 'admin' scope")


async def test_a_payload_with_a_script_is_shown_as_text(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client
) -> None:
    browser = fresh_browser
    hostile = "<script>document.title='owned'; alert(1)</script><img src=x onerror=alert(2)>"
    info = await client.enqueue(hostile, {"note": hostile}, delay=3600)
    log_in(browser, base_url, ADMIN, f"/queues/default/tasks/{info.id}")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no script ran
    assert browser.title != "owned"
    assert hostile in browser.find_element(By.CSS_SELECTOR, "[data-payload]").text
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img") == []
    browser.get(base_url + "/queues/default?state=scheduled")
    assert hostile in cell_text(browser, "table.tasks")


async def test_pages_work_without_javascript_and_set_strict_headers(
    base_url: str, client: tickr.Client
) -> None:
    await client.enqueue("t", 1, delay=3600)
    async with httpx.AsyncClient(base_url=base_url) as http:  # no JavaScript at all
        form = await http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        await http.post("/login", data={"token": ADMIN, "csrf": csrf.group(1), "next": "/"})
        page = await http.get("/queues/default", params={"state": "scheduled"})
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script>" not in page.text and " style=" not in page.text, "no inline code"
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        paused = await http.post(
            "/queues/default/pause", data={"csrf": token.group(1)}, follow_redirects=True
        )
        assert paused.status_code == 200 and "Queue default paused." in paused.text
        wrong = await http.post("/login", data={"token": "wrong-token-0123456789", "csrf": "x"})
        assert wrong.status_code == 403


async def test_screenshots_of_every_page(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client,
    inspector: tickr.Inspector, running_server: ServerFactory,
) -> None:  # fmt: skip
    browser = fresh_browser

    async def flaky(task: tickr.Task) -> str:
        if task.payload % 4 == 0:
            raise ConnectionError("SMTP 451 4.7.1: try again later")
        return "sent"

    for number in range(40):
        await client.enqueue("email:send", number, queue="email", max_retry=0)
    async with running_server(flaky, queues={"email": 1}):
        await eventually(lambda: _archived(inspector, "email", 10))
        await client.enqueue("report:build", {"day": "monday"}, queue="reports", delay=600)
        log_in(browser, base_url, ADMIN, "/servers")
        shot(browser, "servers")
    for name, path in (
        ("overview", "/"),
        ("queue-archived", "/queues/email?state=archived"),
        ("queue-filtered", "/queues/email?state=archived&error=smtp"),
        ("audit", "/audit"),
    ):
        browser.get(base_url + path)
        assert browser.find_elements(By.CSS_SELECTOR, "main h1"), name
        shot(browser, name)
    browser.find_element(By.CSS_SELECTOR, "header input[name=id]").send_keys("no-such-task\n")
    wait_text(browser, "main", "No task no-such-task")
    browser.set_window_size(390, 844)
    browser.get(base_url + "/queues/email?state=archived")
    shot(browser, "queue-phone")
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, "a phone scrolls tables inside their box, not the page"
    browser.get(base_url + "/login")
    shot(browser, "login")


async def _archived(inspector: tickr.Inspector, queue: str, count: int) -> bool:
    return (await inspector.queue_info(queue, memory=False)).archived >= count


async def test_cron_entries_show_their_next_runs_and_run_now(
    fresh_browser: webdriver.Chrome, base_url: str, url: str, namespace: str,
    inspector: tickr.Inspector,
) -> None:  # fmt: skip
    browser = fresh_browser
    scheduler = tickr.Scheduler(url, namespace=namespace)
    scheduler.register("0 6 * * 1", "report:weekly", {"team": "ops"}, entry_id="weekly-report")
    scheduler.register("@every 12h", "cache:refresh", entry_id="cache", queue="maintenance")
    serving = asyncio.create_task(scheduler.serve())
    try:
        await scheduler.wait_ready()
        await eventually(lambda: _entries(inspector, 2))  # its first heartbeat
        log_in(browser, base_url, ADMIN, "/cron")
        assert "weekly-report" in cell_text(browser, "table")
        runs = browser.find_elements(By.XPATH, "//tr[td/a[text()='weekly-report']]//li")
        assert len(runs) == 5 and all(" 06:00:00 UTC" in run.text for run in runs)
        browser.find_element(By.LINK_TEXT, "weekly-report").click()
        wait_text(browser, "main h2", "History of weekly-report")
        shot(browser, "cron")
        browser.find_element(By.CSS_SELECTOR, "tr.chosen button").click()
        wait_text(browser, ".notice", "weekly-report: task")
        pending = await inspector.list_tasks("default", "pending")
        assert [(task.type, task.payload) for task in pending] == [
            ("report:weekly", {"team": "ops"})
        ]
    finally:
        await scheduler.shutdown()
        await serving


async def _entries(inspector: tickr.Inspector, count: int) -> bool:
    return len(await inspector.scheduler_entries()) == count


async def test_limits_are_shown_and_changed_on_the_queue_page(
    fresh_browser: webdriver.Chrome, base_url: str, client: tickr.Client,
    inspector: tickr.Inspector,
) -> None:  # fmt: skip
    browser = fresh_browser
    await client.enqueue("t", 1, queue="api")
    log_in(browser, base_url, ADMIN, "/queues/api")
    assert "None" in cell_text(browser, "[data-rate-limit]")
    rate_form = browser.find_element(By.CSS_SELECTOR, "form.limit-form:has(input[value=rate])")
    rate_form.find_element(By.NAME, "limit").send_keys("100")
    period = rate_form.find_element(By.NAME, "period")
    period.clear()
    period.send_keys("60")
    rate_form.find_element(By.XPATH, ".//button[text()='Set']").click()
    wait_text(browser, ".notice", "Rate limit set: 100 per 60 s")
    assert "100 per 1 min, burst 1" in cell_text(browser, "[data-rate-limit]")
    cap_form = browser.find_element(By.CSS_SELECTOR, "form.limit-form:has(input[value=conc])")
    cap_form.find_element(By.NAME, "limit").send_keys("4")
    cap_form.find_element(By.XPATH, ".//button[text()='Set']").click()
    wait_text(browser, "[data-concurrency-limit]", "At most 4 active")
    shot(browser, "queue-limits")
    info = await inspector.queue_info("api", memory=False)
    assert info.rate_limit == tickr.RateLimit(100, 60.0) and info.concurrency_limit == 4
    browser.find_element(By.XPATH, "//form[input[@value='rate']]//button[text()='Remove']").click()
    wait_text(browser, ".notice", "Rate limit removed.")
    assert (await inspector.queue_info("api", memory=False)).rate_limit is None
