"""The MLflow UI in a real headless Chromium over a store made by a real small sweep.

Checks what a person looks for: the experiment, the sweep's parent run with its children under it, a
child's metrics and its learning-curve plot among the artifacts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import SWEEP_NAME, require
from sweeplab.tracking.ui import UiServer, running_ui, ui_url

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60  # the UI's first page load compiles nothing, but the store and the React app take seconds on 2 cores
CHROME_ARGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking "
    "--disable-component-update --disable-sync --no-first-run --window-size=1600,1000"
).split()


@pytest.fixture(scope="module")
def ui(small_sweep: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    log = tmp_path_factory.mktemp("ui") / "mlflow-ui.log"
    with running_ui(small_sweep["uri"], log) as server:
        yield server


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    require(
        bool(CHROMIUM and CHROMEDRIVER),
        "no browser: Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in [*CHROME_ARGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str, screenshot: Path) -> None:
    """Wait until `text` is visible on the page; on timeout keep a screenshot to look at."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, WAIT_S).until(lambda d: text in d.find_element("tag name", "body").text)
    except TimeoutException:
        driver.save_screenshot(str(screenshot))
        pytest.fail(f"'{text}' did not appear on {driver.current_url} within {WAIT_S} s; see {screenshot}")


def test_ui_shows_experiment_sweep_children_metrics_and_curves(
    small_sweep: dict, ui: UiServer, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    client = MlflowClient(small_sweep["uri"])
    children = client.search_runs(
        [small_sweep["experiment_id"]],
        f"tags.mlflow.parentRunId = '{small_sweep['parent_id']}' and attributes.status = 'FINISHED'",
    )
    child = children[0]

    browser.get(ui_url(small_sweep["experiment_id"], base=ui.url))
    wait_for_text(browser, "fashion_mnist", tmp_path / "experiment.png")
    wait_for_text(browser, SWEEP_NAME, tmp_path / "runs.png")
    # Children are folded under their parent until its expander (the button in its name cell) is clicked.
    assert child.info.run_name not in browser.find_element(By.TAG_NAME, "body").text
    expander = f"//a[.//span[text()='{SWEEP_NAME}']]/ancestor::div[contains(@class,'ag-cell-wrapper')]//button"
    WebDriverWait(browser, WAIT_S).until(expected_conditions.element_to_be_clickable((By.XPATH, expander))).click()
    for run in children:
        wait_for_text(browser, run.info.run_name, tmp_path / "children.png")

    browser.get(ui_url(small_sweep["experiment_id"], child.info.run_id, base=ui.url))
    wait_for_text(browser, child.info.run_name, tmp_path / "run.png")
    wait_for_text(browser, "val_accuracy", tmp_path / "metrics.png")
    wait_for_text(browser, "optimizer.name", tmp_path / "params.png")
    wait_for_text(browser, "Parent run", tmp_path / "parent.png")  # the overview links the sweep's parent

    browser.get(ui_url(small_sweep["experiment_id"], child.info.run_id, base=ui.url) + "/artifacts")
    wait_for_text(browser, "learning_curves.png", tmp_path / "artifacts.png")
    browser.find_element(By.XPATH, "//*[text()='learning_curves.png']").click()
    # The preview is an <img> of the downloaded file (a blob: URL); it must have decoded to a real picture.
    preview = "//img[starts-with(@src, 'blob:')]"
    image = WebDriverWait(browser, WAIT_S).until(expected_conditions.visibility_of_element_located((By.XPATH, preview)))
    WebDriverWait(browser, WAIT_S).until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    browser.save_screenshot(str(tmp_path / "learning_curves.png"))
