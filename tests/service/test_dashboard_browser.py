"""The dashboard page in headless Chromium against a real server over a home folder with real data: every panel
renders data, the behaviour panel shows its charts when asked (and says why not to a viewer key), nothing else is
logged as an error, no request leaves 127.0.0.1, and a screenshot is kept in ``test-artifacts/dashboard.png``.

Chromium is Debian's (``/usr/bin/chromium``; ``make test`` installs it), driven by Playwright's Python package; no
browser is downloaded.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rlops.service import ServiceSettings
from rlops.service.runner import BackgroundServer
from tests.keys import make_key
from tests.service.test_dashboard import MODEL, make_home

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                               "(make test installs it)")


def _fire_alert(home: Path) -> bool:
    """Store one alert through the alerts package, when it is installed; whether it is."""
    try:
        from rlops.home import Home
        from rlops.monitoring.alerts import AlertEvaluator, AlertRules, AlertStore, Signal
    except ImportError:
        return False
    rules = AlertRules.from_dict({"resolve_after": 0, "rules": [
        {"name": "age-drift", "signal": "psi", "op": ">", "threshold": 0.25, "severity": "critical"}]})
    with AlertStore.for_home(Home(home)) as store:
        AlertEvaluator(rules, store).evaluate([Signal("psi", {"deployment": "news", "feature": "age"}, 0.6)],
                                              time.time_ns() // 1000)
    return True


def test_dashboard_page_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    scenario = make_home(tmp_path, monkeypatch, canary_from=9)
    alerts = _fire_alert(scenario.home)
    messages: list[str] = []
    requests: list[str] = []
    viewer = make_key(scenario.home, "viewer")
    analyst = make_key(scenario.home, "analyst")
    with BackgroundServer(ServiceSettings(home=scenario.home, port=0)) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("requestfailed", lambda r: messages.append(f"requestfailed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url + "/", wait_until="load")
            # No key yet: the page asks for one; a wrong one is refused and asked for again; a viewer key shows it.
            page.wait_for_selector("#signin:not([hidden])", timeout=10_000)
            page.fill("#apikey", viewer[:-4] + "AAAA")
            page.click("#signin button")
            page.wait_for_selector("#status:has-text('not accepted')", timeout=10_000)
            page.fill("#apikey", viewer)
            page.click("#signin button")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            for panel in ("deployments", "rewards", "comparison", "drift", "actions", "alerts", "reports", "cards",
                          "behaviour"):
                page.wait_for_selector(f"#{panel} .body[data-state=ready]", timeout=5_000)

            deployments = page.inner_text("#deployments").lower()
            assert "news" in deployments and f"{MODEL}@1" in deployments and "production" in deployments
            assert "canary" in deployments and "70.0%" in deployments and "30.0%" in deployments
            # Reward over time: a mean line and a confidence band per version, points with tooltips.
            versions = page.eval_on_selector_all("#rewards path.mean", "ps => ps.map(p => p.dataset.version)")
            assert {"news@r1", f"{MODEL}@1"} <= set(versions) and len(versions) == 3
            assert page.locator("#rewards path.band").count() == 3 and page.locator("#rewards circle").count() > 10
            # Canary vs production: both arms drawn with intervals, the guardrail's verdict in words.
            assert page.locator("#comparison svg line.ci").count() == 2
            assert re.search(r"Guardrail: (CONTINUE|PROMOTE|ROLLBACK)", page.inner_text("#comparison"), re.I)
            # Drift: a row per feature; the shifted feature's hottest cell is the hottest of all.
            psi = page.eval_on_selector_all(
                "#drift g.row", "rows => Object.fromEntries(rows.map(r => [r.dataset.feature, "
                "Array.from(r.querySelectorAll('rect.cell')).map(c => parseFloat(c.dataset.psi) || 0)]))")
            assert {"age", "device", "activity", "taste[0]"} <= set(psi)
            assert max(psi["age"]) > 0.25 and max(psi["age"]) > max(max(v) for k, v in psi.items() if k != "age")
            # Actions: stacked shares per version; a table with the numbers.
            assert page.locator("#actions rect.share").count() >= 10
            assert page.locator("#actions table th").count() >= 7
            alerts_text = page.inner_text("#alerts").lower()
            assert ("age-drift" in alerts_text) if alerts else ("no alerts store" in alerts_text)
            reports = page.inner_text("#reports")
            assert "reports/news-model-v1/report.json" in reports and f"{MODEL}@1" in reports
            page.click(f"#cards details[data-ref='{MODEL}@1'] summary")
            cards = page.inner_text("#cards")
            assert "Stage history" in cards and "canary held" in cards and "click@1" in cards
            # Accessible structure: one h1, a heading per panel, header cells in every table.
            assert page.locator("h1").count() == 1 and page.locator("main section h2").count() == 9
            assert page.locator("table:not(:has(th))").count() == 0

            # Behaviour: nothing is computed until asked; a viewer key is told what it lacks.
            assert "choose a deployment" in page.inner_text("#behaviour")
            with page.expect_response(lambda r: "v1/dashboard?deployment=news" in r.url) as refreshed:
                page.select_option("#deployment", "news")
            refreshed.value.finished()  # the refresh the choice starts is not cut short by what follows
            page.click("#behaviour-show")
            page.wait_for_selector("#behaviour .body[data-state=error]", timeout=10_000)
            assert "needs read_probabilities" in page.inner_text("#behaviour")
            # An analyst key (its probabilities permission covers the policy's scores) sees the charts as images.
            page.evaluate("key => sessionStorage.setItem('rlops.apikey', key)", analyst)
            page.reload(wait_until="load")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)
            with page.expect_response(lambda r: "v1/dashboard?deployment=news" in r.url) as refreshed:
                page.select_option("#deployment", "news")
            refreshed.value.finished()  # the refresh the choice starts is not cut short by what follows
            page.click("#behaviour-show")
            page.wait_for_selector("#behaviour .body[data-state=ready] img.plot", timeout=30_000)
            images = page.eval_on_selector_all(
                "#behaviour img.plot", "imgs => imgs.map(i => [i.complete && i.naturalWidth > 0, i.alt, "
                "i.src.slice(0, 26)])")
            assert len(images) >= 3 and all(ok and alt for ok, alt, _ in images), images
            assert {src for _, _, src in images} == {"data:image/svg+xml;base64,"}
            assert page.locator("#behaviour table tbody tr").count() == 5  # one row per feature of the schema
            assert page.locator("#behaviour h3").count() >= 2  # the importance, then a partial dependence or more

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    refused = [m for m in messages if "status of 401" in m or "status of 403" in m]
    # the wrong key and the viewer's behaviour request, which the browser reports on the console
    assert len(refused) == 2, messages
    assert not [m for m in messages if m.startswith(("error", "pageerror", "requestfailed")) and m not in refused], \
        messages
    outside = [u for u in requests if urlsplit(u).hostname != "127.0.0.1"]
    assert requests and not outside, outside
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
