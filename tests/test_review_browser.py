"""The review page in a real browser: headless Chromium from Debian's packages, driven through WebDriver.

Marked ``browser``: a machine without chromium and chromium-driver skips these with the reason (`make deps`
installs both; CI runs them). The runs' folders are built on disk (review_fixtures), no sshd is needed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from review_fixtures import HOSTILE_PROMPT, HOSTILE_RUN, base_spec, make_project, make_run, score

from cosmos_tools.config import load_config
from cosmos_tools.review_page import write_review

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="headless browser tests need Debian's chromium and chromium-driver (make deps installs "
                              "them)"),
]
LOAD_TIMEOUT = 60  # seconds a page may take on a loaded 2-core machine: a limit, not a timing assert


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    browser.set_page_load_timeout(LOAD_TIMEOUT)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A review of two ok runs (one with a hostile prompt), a failed and a blocked one with a hostile name,
    written in one project and then opened from a copy of outputs/ moved elsewhere."""
    base = tmp_path_factory.mktemp("review")
    root, cache = base / "project é", base / "cache"
    make_project(root, cache)
    make_run(root, cache, "alley-1", base_spec(), computed=("edge",), upscale=True)
    make_run(root, cache, "alley_w-1", base_spec(edge__control_weight=0.9, prompt=HOSTILE_PROMPT))
    make_run(root, cache, "alley-2", base_spec(seed=7), status="failed", log="RuntimeError: CUDA out of memory")
    make_run(root, cache, HOSTILE_RUN, base_spec(seed=3), status="blocked")
    score(root / "outputs" / "runs" / "alley-1", 0.25)
    score(root / "outputs" / "runs" / "alley_w-1", 0.75)
    written = write_review(load_config(root), ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN])
    moved = base / "elsewhere" / "outputs copy #1"
    shutil.copytree(root / "outputs", moved, symlinks=True)
    shutil.rmtree(root)  # the page must not need the project any more
    return moved / written.relative_to(root / "outputs")


def _wait(driver, script: str, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, LOAD_TIMEOUT, poll_frequency=0.2).until(lambda d: d.execute_script(script))
    except TimeoutException:
        state = driver.execute_script("return Array.from(document.querySelectorAll('video')).map("
                                      "v => [v.currentSrc, v.readyState, v.currentTime, v.error && v.error.code])")
        pytest.fail(f"{what}: not so after {LOAD_TIMEOUT} s; videos: {state}")


def _times(driver) -> list[float]:
    return driver.execute_script("return Array.from(document.querySelectorAll('video')).map(v => v.currentTime)")


@pytest.fixture(scope="module")
def loaded(driver, page):
    driver.get_log("performance")  # drop what the browser's own start page requested: only the review's count
    driver.get(page.as_uri())
    _wait(driver, "const v = document.querySelectorAll('video'); return v.length > 0 && "
                  "Array.from(v).every(x => x.readyState >= 2)", "every <video> has readyState >= 2")
    return driver


def test_every_video_loads_from_the_moved_copy(loaded):
    count = loaded.execute_script("return document.querySelectorAll('video').length")
    assert count == 3 + 2  # source, depth control, edge computed by Cosmos; the two ok runs
    posters = loaded.execute_script("return Array.from(document.querySelectorAll('video')).map(v => v.poster)")
    assert all(p.startswith("file:") and p.endswith(".jpg") for p in posters)


def test_play_advances_every_video_and_pause_stops_them(loaded):
    button = loaded.find_element("css selector", 'button[data-action="play"]')
    assert button.tag_name == "button"
    button.click()
    _wait(loaded, "return Array.from(document.querySelectorAll('video')).every(v => v.currentTime > 0.2)",
          "every video's currentTime advances after Play")
    button.click()
    assert loaded.execute_script("return Array.from(document.querySelectorAll('video')).every(v => v.paused)")


def test_scrubber_and_arrow_keys_move_every_video(loaded):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    loaded.execute_script("const s = document.querySelector('input[data-action=seek]'); s.value = 1.0; "
                          "s.dispatchEvent(new Event('input', {bubbles: true}));")
    _wait(loaded, "return Array.from(document.querySelectorAll('video')).every(v => Math.abs(v.currentTime - 1) "
                  "< 0.01 && !v.seeking)", "the scrubber moves every video to 1.0 s")
    ActionChains(loaded).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT).perform()
    fps = json.loads(loaded.find_element("id", "review-data").get_attribute("textContent"))["fps"]
    expected = (24 + 2 + 0.5) / fps  # frame 24 (1.0 s at 24 fps) + two frames, shown from the frame's middle
    times = _times(loaded)
    assert all(abs(t - expected) < 1e-3 for t in times), times
    ActionChains(loaded).send_keys(Keys.ARROW_LEFT).perform()
    assert all(abs(t - (expected - 1 / fps)) < 1e-3 for t in _times(loaded))


def test_hostile_names_and_prompts_render_as_text(loaded):
    assert loaded.title == "review: runs alley-1, alley_w-1, alley-2, " + HOSTILE_RUN  # the text, not 'pwned'
    assert loaded.execute_script("return document.querySelectorAll('img, b, script[src]').length") == 0
    headings = [h.text for h in loaded.find_elements("css selector", "article.tile h3")]
    assert HOSTILE_RUN in headings
    marks = [m.get_attribute("textContent") for m in loaded.find_elements("css selector", "dl.differing mark")]
    assert HOSTILE_PROMPT in marks
    data = json.loads(loaded.find_element("id", "review-data").get_attribute("textContent"))
    assert [r["run_id"] for r in data["runs"]][-1] == HOSTILE_RUN


def test_failed_and_blocked_runs_show_verdict_and_log(loaded):
    failed = loaded.find_element("css selector", 'article[data-run="alley-2"]')
    assert "exit code 1" in failed.find_element("css selector", ".verdict").text
    assert "CUDA out of memory" in failed.find_element("css selector", "pre.log").get_attribute("textContent")
    assert not failed.find_elements("css selector", "video")
    blocked = loaded.find_element("css selector", "article.tile.blocked")
    assert "guardrail" in blocked.find_element("css selector", ".verdict").text


def test_the_sort_control_orders_tiles_by_critic_score_and_back_hiding_none(loaded):
    from selenium.webdriver.support.ui import Select

    def order():
        return [a.get_attribute("data-run") for a in loaded.find_elements("css selector", ".grid.runs article.tile")]

    selected = ["alley-1", "alley_w-1", "alley-2", HOSTILE_RUN]
    assert order() == selected
    control = Select(loaded.find_element("css selector", 'select[data-action="sort"]'))
    control.select_by_value("critic")
    assert order() == ["alley_w-1", "alley-1", "alley-2", HOSTILE_RUN]  # best first, unscored last, none hidden
    labels = [e.text for e in loaded.find_elements("css selector", "article.tile .critic")]
    assert labels == ["critic 0.75 (advisory)", "critic 0.25 (advisory)"]
    control.select_by_value("order")
    assert order() == selected


def test_no_console_errors_and_no_request_outside_file(loaded):
    errors = [e for e in loaded.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    urls = []
    for entry in loaded.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert urls and all(u.startswith("file:") for u in urls), urls
    resources = loaded.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("file:") for u in resources), resources


def test_screenshot_is_not_blank(loaded, tmp_path):
    import cv2
    import numpy as np

    loaded.execute_script("window.scrollTo(0, 0)")
    shot = tmp_path / "review.png"
    assert loaded.save_screenshot(str(shot))
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 200
    assert float(np.std(image)) > 20  # posters, text and panels, not one flat colour
    colours = len(np.unique(image.reshape(-1, 3)[::7], axis=0))
    assert colours > 200
