"""The dashboard as a person uses it, in headless Chromium on the local cloud: sign in, look at the auction,
train a model and predict a day through real jobs, and meet every bad case with a clear message.

The tests of this module run in order and share one signed-in browser tab (a later view uses the model an
earlier one trained), as a person's session would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

JOB_TIMEOUT_MS = 420_000  # a training job on 2 busy cores; the page waits as long as the job runs
VIEW_TIMEOUT_MS = 90_000


class Dashboard:
    """A browser tab on the dashboard, recording console errors and failed page scripts."""

    def __init__(self, page: Any, state: dict[str, Any]) -> None:
        self.page = page
        self.state = state
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

    @property
    def url(self) -> str:
        return str(self.state["dashboard_url"])

    def open(self, route: str) -> None:
        """Load the dashboard afresh at a view (a new document: nothing stale from the last view)."""
        self.page.goto("about:blank")
        self.page.goto(f"{self.url}#/{route}")
        self.wait_ready(route.split("?")[0])

    def wait_ready(self, view: str) -> str:
        """Wait until the view has finished drawing (or shows the sign-in form); its outcome."""
        self.page.wait_for_selector(
            f"body[data-ready^='{view}'], body[data-ready='signin']",
            state="attached",
            timeout=VIEW_TIMEOUT_MS,
        )
        return str(self.page.get_attribute("body", "data-ready"))

    def after(self, action: Any, view: str) -> str:
        """Do `action` (a click, a choice, signing in) and wait until the page has drawn again (the view, or
        the sign-in form); the outcome."""
        before = self.page.get_attribute("body", "data-render") or ""
        action()
        again = f"body:not([data-render='{before}'])"
        self.page.wait_for_selector(
            f"{again}[data-ready^='{view}'], {again}[data-ready='signin']",
            state="attached",
            timeout=VIEW_TIMEOUT_MS,
        )
        return str(self.page.get_attribute("body", "data-ready"))

    def choose(self, select: str, value: str, view: str) -> str:
        return self.after(lambda: self.page.select_option(select, value), view)

    def sign_in(self, username: str | None = None, password: str | None = None) -> None:
        demo = self.state["demo_user"]
        self.page.fill("#signin-user", username or demo["username"])
        self.page.fill("#signin-password", password or demo["password"])
        self.page.click("#signin-submit")

    def chart_points(self, canvas_id: str) -> list[int]:
        """How many points each dataset of the chart drawn on the canvas holds ([] when no chart is drawn)."""
        return list(
            self.page.evaluate(
                "(id) => { const c = window.Chart.getChart(document.getElementById(id));"
                " return c ? c.data.datasets.map((d) => d.data.filter((v) => v !== null).length) : []; }",
                canvas_id,
            )
        )

    def text(self, selector: str) -> str:
        return str(self.page.inner_text(selector))

    def run_job(self, slot: str, button: str, disabled_while_running: bool = False) -> str:
        """Click `button` and wait for the new job drawn in `slot` to end; its final status. With
        `disabled_while_running`, also check the button cannot be clicked again until then."""
        job = f"{slot} .job"
        before = self.page.get_attribute(job, "data-job-id") if self.page.locator(job).count() else None
        self.page.click(button)
        if disabled_while_running:
            assert self.page.is_disabled(button)
        fresh = f"{job}:not([data-job-id='{before}'])" if before else job
        self.page.wait_for_selector(
            f"{fresh}[data-status='succeeded'], {fresh}[data-status='failed']", timeout=JOB_TIMEOUT_MS
        )
        return str(self.page.get_attribute(job, "data-status"))

    def shot(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def dash(browser: Any, cloud_state: dict[str, Any]) -> Iterator[Dashboard]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(VIEW_TIMEOUT_MS)
    dashboard = Dashboard(page, cloud_state)
    dashboard.page.goto(f"{dashboard.url}#/overview")
    if dashboard.wait_ready("overview") == "signin":
        assert dashboard.after(dashboard.sign_in, "overview") == "overview"
    yield dashboard
    context.close()


@pytest.fixture
def fresh(browser: Any, cloud_state: dict[str, Any]) -> Iterator[Dashboard]:
    """A new tab with nobody signed in."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield Dashboard(context.new_page(), cloud_state)
    context.close()


def _days(dash: Dashboard) -> list[int]:
    values = dash.page.eval_on_selector_all("#data-date option", "(os) => os.map((o) => Number(o.value))")
    return sorted(int(v) for v in values)


# ------------------------------------------------------------------ the views, in a person's order


def test_overview_shows_the_days_stored_and_no_model_yet(dash: Dashboard, screenshots: Path) -> None:
    """Given a signed-in person on a cloud holding five synthetic days and no model, when the overview opens,
    then it shows the five days, no model, no job running, and offers to train the first model."""
    dash.open("overview")
    assert "5" in dash.text("#ov-days .big")
    assert dash.text("#ov-model .big") == "none"
    assert dash.text("#ov-jobs .big") == "0"
    assert dash.page.is_enabled("#ov-train")
    assert dash.page.is_disabled("#ov-predict")
    assert dash.errors == []


def test_data_view_draws_a_stocks_auction_and_the_cross_section(dash: Dashboard, screenshots: Path) -> None:
    """Given the data view, when a date and a stock are chosen, then prices, sizes, the book and the targets of
    that stock's 55 snapshots are drawn, and the cross-section shows every stock at the chosen second."""
    dash.open("data")
    days = _days(dash)
    assert len(days) == 5
    dash.choose("#data-date", str(days[1]), "data")
    dash.choose("#data-stock", "7", "data")
    dash.choose("#data-second", "300", "data")
    assert "stock=7" in dash.page.evaluate("() => location.hash")
    assert dash.chart_points("d-prices") and min(dash.chart_points("d-prices")[:3]) == 55  # wap, bid, ask
    assert dash.chart_points("d-sizes") == [55, 55]
    assert dash.chart_points("d-book") == [55, 55]
    assert dash.chart_points("d-target") == [55]
    (cross,) = dash.chart_points("d-cross")
    assert cross > 150  # one bar per stock quoted at that second (the synthetic market has 200)
    assert "at second 300" in dash.page.evaluate(
        "() => window.Chart.getChart(document.getElementById('d-cross')).options.plugins.title.text"
    )
    dash.shot(screenshots, "data")
    assert dash.errors == []


def test_models_view_trains_a_first_model_through_a_job(dash: Dashboard, screenshots: Path) -> None:
    """Given no model, when a refit on all days up to the third is started from the models view, then the page
    follows the job from queued to succeeded and draws the new model in the lineage with its metrics."""
    dash.open("models")
    assert "No models yet" in dash.text("#m-lineage")
    dash.page.fill("#m-name", "browser")
    dash.page.select_option("#m-parent", "")
    dash.page.select_option("#m-mode", "upto")
    days = sorted(
        int(v) for v in dash.page.eval_on_selector_all("#m-end option", "(os) => os.map((o) => o.value)")
    )
    dash.page.select_option("#m-end", str(days[2]))
    dash.after(lambda: dash.run_job("#m-job", "#m-train"), "models")
    assert dash.page.get_attribute("#m-job .job", "data-status") == "succeeded", dash.text("#m-job")
    dash.page.wait_for_selector("#m-lineage svg .node")
    assert dash.page.locator("#m-lineage svg .node").count() == 1
    assert "browser v1" in dash.text("#m-detail")
    assert dash.chart_points("m-chain") and dash.chart_points("m-chain")[0] == 1
    assert dash.errors == []


def test_overview_trains_the_next_day_with_one_click(dash: Dashboard, screenshots: Path) -> None:
    """Given one model trained through the third day, when "Train day 3" is clicked on the overview, then the
    buttons stay disabled while the job runs, and afterwards the registry holds the day's update (or the
    parent, kept because the update was no better) and the next step is offered."""
    dash.open("overview")
    train = dash.page.locator("#ov-train")
    label = train.inner_text()
    assert label.startswith("Train day ")
    dash.after(lambda: dash.run_job("#ov-job", "#ov-train", disabled_while_running=True), "overview")
    assert dash.page.get_attribute("#ov-job .job", "data-status") == "succeeded", dash.text("#ov-job")
    assert "registered" in dash.text("#ov-job") or "kept" in dash.text("#ov-job")
    assert dash.errors == []


def test_models_view_draws_the_lineage_of_the_update(dash: Dashboard, screenshots: Path) -> None:
    """Given a refit and its daily update, when the models view opens, then the lineage draws the parent chain
    (an edge from the refit to its update) and the registry lists both."""
    dash.open("models")
    nodes = dash.page.locator("#m-lineage svg .node").count()
    edges = dash.page.locator("#m-lineage svg .edge").count()
    assert nodes >= 1 and edges == nodes - 1
    assert dash.page.locator("#m-table tbody tr").count() == nodes
    dash.shot(screenshots, "models")
    assert dash.errors == []


def test_overview_predicts_the_next_day_with_one_click(dash: Dashboard, screenshots: Path) -> None:
    """Given the latest model and one day it has not predicted, when "Predict day N" is clicked on the
    overview, then the page waits for the inference job and shows that day's scored inference."""
    dash.open("overview")
    assert dash.text("#ov-inference .big") == "none"
    label = dash.page.locator("#ov-predict").inner_text()
    assert label.startswith("Predict day ")
    dash.after(lambda: dash.run_job("#ov-job", "#ov-predict", disabled_while_running=True), "overview")
    assert dash.page.get_attribute("#ov-job .job", "data-status") == "succeeded", dash.text("#ov-job")
    assert dash.text("#ov-inference .big") == f"day {label.split()[-1]}"
    assert "MAE" in dash.text("#ov-inference dl")
    assert dash.errors == []


def test_predictions_view_runs_an_inference_job_and_scores_it(dash: Dashboard, screenshots: Path) -> None:
    """Given the latest model, when the last day is chosen and "Predict this day" clicked, then the page waits
    for the inference job and draws the predictions against the targets of a stock, the MAE beside predicting
    zero, the error of each of the 200 stocks and the per-day MAE curve."""
    dash.open("predictions")
    days = sorted(
        int(v) for v in dash.page.eval_on_selector_all("#p-date option", "(os) => os.map((o) => o.value)")
    )
    dash.choose("#p-date", str(days[-1]), "predictions")
    dash.after(lambda: dash.run_job("#p-job", "#p-run"), "predictions")
    assert dash.page.get_attribute("#p-job .job", "data-status") == "succeeded", dash.text("#p-job")
    dash.choose("#p-stock", "3", "predictions")
    assert dash.chart_points("p-series") == [55, 55]
    assert dash.chart_points("p-mae") == [2]
    model_errors, zero_errors = dash.chart_points("p-stocks")
    assert model_errors == zero_errors > 150  # one bar pair per stock of the day
    assert dash.chart_points("p-days")[0] >= 1
    assert "model MAE" in dash.text("#p-score")
    dash.shot(screenshots, "predictions")
    assert dash.errors == []


def test_overview_shows_the_latest_model_and_inference(dash: Dashboard, screenshots: Path) -> None:
    """Given a trained model and a scored inference, when the overview opens, then it names the model, the day
    it was trained through and the inference's MAE, lists the recent jobs and draws the daily MAE curve."""
    dash.open("overview")
    assert "browser v" in dash.text("#ov-model")
    assert "trained through day" in dash.text("#ov-model")
    assert "MAE" in dash.text("#ov-inference")
    assert dash.page.locator("#ov-recent tbody tr").count() >= 4
    assert dash.chart_points("ov-curve")[0] >= 1
    dash.shot(screenshots, "overview")
    assert dash.errors == []


def test_controls_are_labelled_and_reachable_by_keyboard(dash: Dashboard, screenshots: Path) -> None:
    """Given each view on a laptop-sized window, then every select and input has a label, nothing overflows
    sideways, the tab key reaches the view's controls, and a lineage node is chosen with the keyboard."""
    for view in ("overview", "data", "models", "predictions"):
        dash.page.set_viewport_size({"width": 1280, "height": 720})
        dash.open(view)
        unlabelled = dash.page.evaluate(
            "() => [...document.querySelectorAll('main section:not([hidden]) select, main section:not([hidden]) input')]"
            ".filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.id)"
        )
        assert unlabelled == [], view
        assert dash.page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), view
        reached = set()
        for _ in range(25):
            dash.page.keyboard.press("Tab")
            reached.add(
                dash.page.evaluate("() => document.activeElement.id || document.activeElement.tagName")
            )
        expected = {
            "overview": "ov-train",
            "data": "data-stock",
            "models": "m-train",
            "predictions": "p-run",
        }[view]
        assert expected in reached, (view, reached)
    dash.page.set_viewport_size({"width": 1440, "height": 900})
    dash.open("models")
    node = dash.page.locator("#m-lineage svg .node").first
    model_id = node.get_attribute("data-model-id")
    node.focus()
    dash.after(lambda: dash.page.keyboard.press("Enter"), "models")
    assert f"model={model_id}" in dash.page.evaluate("() => location.hash")
    assert dash.errors == []


# ------------------------------------------------------------------ bad input and faults


def test_a_failed_job_shows_its_reason(dash: Dashboard, screenshots: Path) -> None:
    """Given a model with the `full` feature set, when an update of it with the `seed` features is started,
    then the job ends failed and the page shows the reason the job gave."""
    dash.open("models")
    dash.page.select_option("#m-parent", index=1)
    dash.page.select_option("#m-mode", "date")
    dash.page.select_option("#m-features", "seed")
    assert dash.run_job("#m-job", "#m-train") == "failed"
    reason = dash.text("#m-job .reason")
    assert "feature set" in reason and "seed" in reason
    dash.shot(screenshots, "failed-job")


def test_an_unknown_date_or_stock_is_named_on_the_page(dash: Dashboard, screenshots: Path) -> None:
    """Given addresses naming a date and a stock that hold no data, when they are opened, then the page says
    which date or stock is unknown and what exists, and keeps its controls usable."""
    dash.open("data?date=9999")
    message = dash.text("#data-message")
    assert "Unknown date" in message and "9999" in message
    assert dash.page.is_visible("#data-date")
    dash.shot(screenshots, "unknown-date")
    dash.open("data?date=0&stock=4242")
    message = dash.text("#data-message")
    assert "Unknown stock" in message and "4242" in message
    dash.open("predictions?date=9999")
    assert "Unknown date" in dash.text("#p-message")
    assert dash.errors == []


def test_the_api_down_is_a_clear_message_with_a_retry(fresh: Dashboard, screenshots: Path) -> None:
    """Given a signed-in tab whose API stops answering (connections refused), when a view loads, then a banner
    says the API is not answering and offers a retry, which works once the API is back."""
    fresh.page.goto(f"{fresh.url}#/data")
    fresh.wait_ready("data")
    fresh.after(fresh.sign_in, "data")
    api = f"{fresh.state['api_url']}/stock_data/**"
    fresh.page.route(api, lambda route: route.abort("connectionrefused"))
    fresh.page.reload()
    assert fresh.wait_ready("data") == "data:error"
    assert "The closecast API is not answering" in fresh.text("#banner")
    assert fresh.page.is_visible("#banner-retry")
    fresh.shot(screenshots, "api-down")
    fresh.page.unroute(api)
    assert fresh.after(lambda: fresh.page.click("#banner-retry"), "data") == "data"
    assert fresh.page.is_hidden("#banner")


def test_a_signed_out_person_is_asked_to_sign_in(fresh: Dashboard, screenshots: Path) -> None:
    """Given nobody signed in, when the dashboard opens, then it shows the sign-in form and no data; a wrong
    password is refused with a message; the right one shows the overview."""
    fresh.page.goto(f"{fresh.url}#/overview")
    assert fresh.wait_ready("overview") == "signin"
    assert fresh.page.is_visible("#signin-form")
    assert fresh.page.is_hidden("#view-overview")
    fresh.sign_in(password="not-the-password-1A!")
    fresh.page.wait_for_selector("#signin-error:not([hidden])")
    assert "Wrong user name or password" in fresh.text("#signin-error")
    fresh.shot(screenshots, "signed-out")
    assert fresh.after(fresh.sign_in, "overview") == "overview"
    assert fresh.text("#user-name") == fresh.state["demo_user"]["username"]


def test_an_expired_session_asks_to_sign_in_again(fresh: Dashboard, screenshots: Path) -> None:
    """Given a tab holding a token the API refuses (expired, or forged), when a view loads, then the API's 401
    brings the sign-in form back saying the session expired, and signing in finishes loading the view."""
    fresh.page.goto(f"{fresh.url}#/models")
    fresh.wait_ready("models")
    forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4IiwiZXhwIjoxfQ.c2lnbmF0dXJl"
    fresh.page.evaluate(
        "(t) => sessionStorage.setItem('closecast.session',"
        " JSON.stringify({token: t, user: 'someone', groups: [], expires: Date.now() + 3600000}))",
        forged,
    )
    fresh.page.reload()
    assert fresh.wait_ready("models") == "signin"
    assert "session has expired" in fresh.text("#signin-reason")
    assert fresh.after(fresh.sign_in, "models") == "models"
