"""A person's first hour, in a real browser: after `make demo`, the tools open where expected.

Debian's chromium (headless, through chromium-driver and selenium; `make browser-deps`
installs both) drives the UIs a newcomer opens after the demo:

- the MLflow UI (`make mlflow-ui` on `MLFLOW_PORT`) shows `persona-classifier` with its
  `@champion` alias;
- one drift report, in MLflow's artifact preview: the whole Evidently page (verdict, persona
  mix chart, feature drift), not just a header;
- the Evidently UI (`make evidently-ui`) dashboard of the monthly checks, and its verdict
  panel (bars named by their verdict, January not plotted);
- after a June with a new segment (a version waiting for review), the persona profile
  picture logged with that version, in MLflow's artifact view;
- the Mage UI's pipeline list (`02_pipeline/start_mage.sh`, bound to 127.0.0.1).

`make demo` itself runs with `API_PORT` set to a free port and must serve there. Every page
is saved as a screenshot under `var/browser/` and checked to be more than a blank page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CATALOG, REPO
from tests.integration.servers import free_port, start, stop, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.mage, pytest.mark.slow]

SHOTS = REPO / "var" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DEMO_TIMEOUT_S = 1200
PAGE_TIMEOUT_S = 120
MAGE_OWNER = ("admin@admin.com", "first_hour_9c2e")


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as exc:  # the page is still loading
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session: its whole process group."""
    stop(proc)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers (Mage's scheduler, workers)


def _persona(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "persona"), *args, "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _new_segment_month(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """June with a new segment after the demo: a version waits for review, with its picture."""
    out = tmp / "june"
    _persona(env, "data", "generate", "--months", "6", "--scenario-for", "2025-06=new_segment",
             "--out", str(out), "--format", "csv")  # fmt: skip
    _persona(env, "data", "ingest", str(out))
    _persona(env, "run-month", "--month", "2025-06")
    [review] = _persona(env, "review")["reviews"]
    assert review["status"] == "pending" and review["picture"].endswith("persona_profile.png")
    return review


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`make demo` on a throw-away embedded store, with Mage starting meanwhile."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert binary.exists(), f"{binary} missing: run `make browser-deps`"
    tmp = tmp_path_factory.mktemp("first-hour")
    var = tmp / "var"
    api_port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{var}/persona.db",
        "MLFLOW_TRACKING_URI": f"sqlite:///{var}/mlflow.db",
        "MLFLOW_ARTIFACT_ROOT": str(var / "mlartifacts"),
        "REPORTS_DIR": str(var / "reports"),
        "PERSONA_CATALOG": str(CATALOG),
        "API_PORT": str(api_port),
        "MAGE_PORT": str(free_port()),
        "MAGE_DATA_DIR": str(tmp / "mage_data"),
        "MLFLOW_PORT": str(free_port()),
        "EVIDENTLY_PORT": str(free_port()),
        "NO_COLOR": "1",
        # The Mage UI owner a person signs in as (start_mage.sh turns authentication on).
        "MAGE_ADMIN_EMAIL": MAGE_OWNER[0],
        "MAGE_ADMIN_PASSWORD": MAGE_OWNER[1],
    }
    var.mkdir(parents=True)
    mage = start(["bash", str(REPO / "02_pipeline" / "start_mage.sh")], env, tmp / "mage.log")
    servers = [mage]
    try:
        demo = subprocess.run(
            ["make", "-s", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_S,
            check=False,
        )
        (tmp / "demo.log").write_text(demo.stdout + demo.stderr, encoding="utf-8")
        assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
        review = _new_segment_month(env, tmp)
        mlflow = start(["make", "-s", "mlflow-ui"], env, tmp / "mlflow.log")
        evidently = start(["make", "-s", "evidently-ui"], env, tmp / "evidently.log")
        servers += [mlflow, evidently]
        urls = {
            "mlflow": f"http://127.0.0.1:{env['MLFLOW_PORT']}",
            "evidently": f"http://127.0.0.1:{env['EVIDENTLY_PORT']}",
            "mage": f"http://127.0.0.1:{env['MAGE_PORT']}",
        }
        wait_http(urls["mlflow"] + "/health", mlflow, tmp / "mlflow.log", timeout=240)
        wait_http(urls["evidently"] + "/api/version", evidently, tmp / "evidently.log", 240)
        wait_http(urls["mage"] + "/", mage, tmp / "mage.log", timeout=300)
        yield {
            "env": env, "demo": demo.stdout + demo.stderr, "api_port": api_port,
            "review": review, **urls,
        }  # fmt: skip
    finally:
        for proc in servers:
            _stop_group(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def screenshot(driver: Any, name: str) -> Path:
    """Save the page under var/browser and check it is readable, not a blank page."""
    from matplotlib import image

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    assert driver.save_screenshot(str(path))
    pixels = image.imread(str(path))[..., :3]
    gray = pixels.mean(axis=2)
    assert gray.std() > 0.05, f"{path} looks blank"
    dark = float(np.mean(gray < 0.5))  # text, lines, bars
    assert dark > 0.002, f"{path} has (almost) nothing drawn on it"
    return path


def test_demo_serves_on_api_port(world: dict[str, Any]) -> None:
    port = world["api_port"]
    assert f"POST http://127.0.0.1:{port}/predict" in world["demo"]
    assert f"POST http://127.0.0.1:{port}/compat/predict" in world["demo"]
    assert '"labels"' in world["demo"]


def test_demo_says_the_alert_once(world: dict[str, Any]) -> None:
    """March's alert is one line (the cycle's ALERT log line), not repeated by the summary."""
    demo = world["demo"]
    assert demo.count("ALERT PersonaOps: retrain for 2025-03") == 1, demo[-4000:]
    assert len(re.findall(r"Holm\s+over\s+\d+\s+persona-fit", demo)) == 1, demo[-4000:]
    assert "Warning" not in demo, demo[-4000:]


def test_mlflow_ui_shows_the_champion(world: dict[str, Any], browser: Any) -> None:
    browser.get(world["mlflow"] + "/#/models/persona-classifier")
    text = _wait(
        lambda: "champion" in body_text(browser) and body_text(browser),
        PAGE_TIMEOUT_S,
        "the registered model page with its @champion alias",
    )
    assert "persona-classifier" in text and "Version" in text
    screenshot(browser, "01-mlflow-model-champion.png")


def _drift_report_run(env: dict[str, str]) -> tuple[str, str, str]:
    """(experiment id, run id, artifact path) of the demo's retrain check."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("persona")
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.kind = 'monitoring' and tags.verdict = 'retrain'",
        max_results=1,
    )
    assert runs, "the demo logged no retrain check"
    run = runs[0]
    names = [a.path for a in client.list_artifacts(run.info.run_id, "monitoring")]
    [report] = [n for n in names if n.endswith(".html")]
    return experiment.experiment_id, run.info.run_id, report


def test_mlflow_artifact_preview_shows_the_whole_drift_report(
    world: dict[str, Any], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    experiment, run, report = _drift_report_run(world["env"])
    browser.get(f"{world['mlflow']}/#/experiments/{experiment}/runs/{run}/artifactPath/{report}")
    frame = _wait(
        lambda: browser.find_elements(By.TAG_NAME, "iframe"),
        PAGE_TIMEOUT_S,
        "the artifact preview iframe",
    )[0]
    browser.switch_to.frame(frame)
    try:
        inside = _wait(
            lambda: (
                "Verdict: retrain" in body_text(browser)
                and "Feature drift" in body_text(browser)
                and body_text(browser)
            ),
            PAGE_TIMEOUT_S,
            "the Evidently report inside the preview",
        )
        assert "Persona mix: reference vs current" in inside
        assert "Centroid shift per persona" in inside
        assert "Dataset Drift is" not in inside
    finally:
        browser.switch_to.default_content()
    screenshot(browser, "02-mlflow-drift-report.png")


def test_drift_report_file_opens(world: dict[str, Any], browser: Any) -> None:
    reports = sorted((Path(world["env"]["REPORTS_DIR"])).glob("drift_2025-03_*.html"))
    assert reports, "no March report"
    browser.get(reports[0].as_uri())
    text = _wait(
        lambda: "Verdict:" in body_text(browser) and body_text(browser),
        PAGE_TIMEOUT_S,
        "the report",
    )
    assert "Persona fit of the month" in text and "Dataset Drift is" not in text
    screenshot(browser, "03-drift-report-2025-03.png")


def test_evidently_ui_dashboard_of_monthly_checks(world: dict[str, Any], browser: Any) -> None:
    import requests

    [project] = requests.get(world["evidently"] + "/api/projects", timeout=30).json()
    browser.get(f"{world['evidently']}/projects/{project['id']}")
    text = _wait(
        lambda: "Unassigned rate" in body_text(browser) and body_text(browser),
        PAGE_TIMEOUT_S,
        "the Evidently dashboard",
    )
    for title in ("Drifted-feature share", "Persona-mix PSI", "Verdict"):
        assert title in text
    time.sleep(2)  # let the charts draw
    screenshot(browser, "04-evidently-dashboard.png")


def test_mlflow_ui_shows_the_persona_profile_picture(world: dict[str, Any], browser: Any) -> None:
    """The picture logged with the version that waits for review, in MLflow's artifact view."""
    import mlflow
    from selenium.webdriver.common.by import By

    review = world["review"]
    run_id = review["picture"].split("/artifacts/")[0].rsplit("/", 1)[1]
    client = mlflow.MlflowClient(tracking_uri=world["env"]["MLFLOW_TRACKING_URI"])
    experiment = client.get_run(run_id).info.experiment_id
    [version] = client.search_model_versions(f"run_id = '{run_id}'")
    assert str(version.version) == review["version"]
    path = "plots/persona_profile.png"
    browser.get(f"{world['mlflow']}/#/experiments/{experiment}/runs/{run_id}/artifactPath/{path}")

    def drawn() -> Any:  # MLflow shows the fetched file as a blob: image, 600 px wide
        found = [
            img for img in browser.find_elements(By.TAG_NAME, "img")
            if (img.get_attribute("src") or "").startswith("blob:") and img.is_displayed()
            and int(browser.execute_script("return arguments[0].naturalWidth", img)) >= 500
        ]  # fmt: skip
        return found[0] if found and "persona_profile.png" in body_text(browser) else None

    picture = _wait(drawn, PAGE_TIMEOUT_S, "the persona profile picture in the artifact view")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", picture)
    time.sleep(1)
    assert picture.is_displayed() and picture.size["width"] > 300, picture.size
    shot = screenshot(browser, "06-mlflow-persona-profile.png")
    picture.screenshot(str(shot.with_name("06b-persona-profile-picture.png")))


def test_evidently_verdict_panel_names_the_verdicts(world: dict[str, Any], browser: Any) -> None:
    """The verdict panel's bars are named by their verdict; January is not plotted."""
    import requests
    from selenium.webdriver.common.by import By

    [project] = requests.get(world["evidently"] + "/api/projects", timeout=30).json()
    browser.get(f"{world['evidently']}/projects/{project['id']}")

    def legend() -> Any:
        labels = browser.find_elements(By.CSS_SELECTOR, ".MuiChartsLegend-label")  # MUI charts
        texts = [t.text for t in labels]
        return texts if {"no_drift", "retrain"} <= set(texts) else None

    words = _wait(legend, PAGE_TIMEOUT_S, "the verdict panel's legend")
    assert set(words) >= {"no_drift", "watch", "retrain", "insufficient_data"}, words
    panel = browser.find_elements(By.XPATH, "//*[normalize-space(text())='Verdict']")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", panel)
    time.sleep(2)  # let the charts draw
    screenshot(browser, "07-evidently-verdict-panel.png")
    snaps = requests.get(
        f"{world['evidently']}/api/projects/{project['id']}/snapshots", timeout=30
    ).json()
    months = sorted(s["metadata"]["month"] for s in snaps)
    assert months == ["2025-02", "2025-03", "2025-04", "2025-05", "2025-06"], months


def test_mage_ui_lists_the_pipelines(world: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(world["mage"] + "/sign-in")
    password = _wait(
        lambda: browser.find_elements(By.CSS_SELECTOR, "input[type=password]"),
        PAGE_TIMEOUT_S,
        "Mage's sign-in form",
    )[0]
    email = next(
        field
        for field in browser.find_elements(By.CSS_SELECTOR, "input")
        if field.get_attribute("type") in ("email", "text")
    )
    email.send_keys(MAGE_OWNER[0])
    password.send_keys(MAGE_OWNER[1], Keys.ENTER)
    _wait(lambda: "sign-in" not in browser.current_url, PAGE_TIMEOUT_S, "signing in to Mage")
    browser.get(world["mage"] + "/pipelines")
    text = _wait(
        lambda: "monthly_persona_cycle" in body_text(browser) and body_text(browser),
        PAGE_TIMEOUT_S,
        "the Mage pipeline list",
    )
    assert "batch_labeling" in text
    screenshot(browser, "05-mage-pipelines.png")
