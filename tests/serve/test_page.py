"""The web page in a real browser: headless Chromium (Debian's chromium + chromedriver, driven by
Selenium, nothing downloaded) picks a file, upscales it, compares, downloads the result."""
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_helpers import make_recipe, noise, png_bytes, running_app

from srgan_fast.serve.limits import Limits

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no chromium/chromedriver (apt-get install chromium chromium-driver; .ci/run does)")
selenium = pytest.importorskip("selenium", reason="selenium drives the browser (the test extra)")


@pytest.fixture(scope="module")
def url(serve_port):
    limits = Limits(max_body=1 << 20, max_pixels=100 * 100, timeout_s=60, memory_budget=190 * 2**20)
    with running_app(serve_port, "page", make_recipe(), limits) as base:
        yield base


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1000"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver, downloads
    finally:
        driver.quit()


def wait_for(condition, seconds=120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(None, seconds, poll_frequency=0.1).until(lambda _: condition())


def downloaded(folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if path.exists() and not list(folder.glob("*.crdownload")) else None


def test_pick_upscale_compare_download(url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver, downloads = browser
    src = tmp_path / "photo.png"
    src.write_bytes(png_bytes(noise(20, 24, seed=7)))
    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#model option"))
    assert [o.text for o in driver.find_elements(By.CSS_SELECTOR, "#model option")] == ["nearest", "dark"]
    assert driver.find_element(By.ID, "detail-row").is_displayed() is False  # no srgan served here
    go = driver.find_element(By.ID, "go")
    assert not go.is_enabled()
    driver.find_element(By.ID, "file").send_keys(str(src))
    assert "photo.png" in driver.find_element(By.ID, "picked").text and go.is_enabled()
    go.click()
    result, error = driver.find_element(By.ID, "result"), driver.find_element(By.ID, "error")
    wait_for(lambda: result.is_displayed() or error.is_displayed())
    assert not error.is_displayed(), error.text
    size = driver.execute_script("const a = document.getElementById('after'); "
                                 "return a.complete ? [a.naturalWidth, a.naturalHeight] : null")
    assert size == [96, 80]
    assert "96×80" in driver.find_element(By.ID, "info").text

    # the before/after slider moves the cut between the two images
    driver.execute_script("const s = document.getElementById('slider'); s.value = 20; "
                          "s.dispatchEvent(new Event('input'));")
    clip = driver.execute_script("return document.getElementById('before').style.clipPath")
    assert clip.replace("px", "") == "inset(0 80% 0 0)"

    link = driver.find_element(By.ID, "download")
    assert link.get_attribute("download") == "photo_x4.png"
    link.click()
    path = wait_for(lambda: downloaded(downloads, "photo_x4.png"))
    out = Image.open(io.BytesIO(path.read_bytes()))
    assert out.size == (96, 80)
    expected = np.asarray(Image.open(src)).repeat(4, 0).repeat(4, 1)  # the nearest test engine
    assert np.array_equal(np.asarray(out), expected)


def test_a_refused_upload_shows_the_services_error(url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    driver, _ = browser
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are not pixels")
    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#model option"))
    driver.find_element(By.ID, "file").send_keys(str(bad))
    driver.find_element(By.ID, "go").click()
    error = driver.find_element(By.ID, "error")
    wait_for(lambda: error.is_displayed())
    assert "not an image format the service reads" in error.text
    assert not driver.find_element(By.ID, "result").is_displayed()


@pytest.fixture(scope="module")
def detail_url(serve_port):
    limits = Limits(max_body=1 << 20, max_pixels=100 * 100, timeout_s=60, memory_budget=190 * 2**20)
    recipe = make_recipe(models=("nearest", "srgan"), default="srgan", details=(0, 0.5, 1), default_detail=1)
    with running_app(serve_port, "pagedetail", recipe, limits) as base:
        yield base


def test_the_detail_slider_steps_through_the_offered_levels(detail_url, browser, tmp_path):
    """srgan is served at detail 0, 0.5 and 1 (the fake engine's brightness says which level
    answered): the slider shows with srgan only, starts at the default, and its level is sent."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver, downloads = browser
    src = tmp_path / "photo.png"
    src.write_bytes(png_bytes(noise(12, 10, seed=3)))
    driver.get(detail_url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#model option"))
    row, value = driver.find_element(By.ID, "detail-row"), driver.find_element(By.ID, "detail-value")
    assert row.is_displayed() and value.text == "1"
    Select(driver.find_element(By.ID, "model")).select_by_visible_text("nearest")
    assert not row.is_displayed()                      # detail blends srgan only
    Select(driver.find_element(By.ID, "model")).select_by_visible_text("srgan")
    driver.execute_script("const d = document.getElementById('detail'); d.value = 1; "
                          "d.dispatchEvent(new Event('input'));")
    assert value.text == "0.5"
    driver.find_element(By.ID, "file").send_keys(str(src))
    driver.find_element(By.ID, "go").click()
    result, error = driver.find_element(By.ID, "result"), driver.find_element(By.ID, "error")
    wait_for(lambda: result.is_displayed() or error.is_displayed())
    assert not error.is_displayed(), error.text
    driver.find_element(By.ID, "download").click()
    path = wait_for(lambda: downloaded(downloads, "photo_x4.png"))
    got = np.asarray(Image.open(io.BytesIO(path.read_bytes()))).astype(int)
    lr = np.asarray(Image.open(src)).repeat(4, 0).repeat(4, 1).astype(int)
    assert np.abs(got - np.round(lr * 0.75)).max() <= 1   # the 0.5 level's engine answered
