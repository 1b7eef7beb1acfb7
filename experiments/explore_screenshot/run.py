"""The README's picture of `steer explore`: start it on the bundled model, set a class, a seed
and a zoom in headless Chromium (Debian's chromium + chromedriver through Selenium), and save a
screenshot.

    python experiments/explore_screenshot/run.py [--out assets/explore.png]
"""
import argparse
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = Path(__file__).resolve().parents[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "assets" / "explore.png"))
    parser.add_argument("--model", default="dssgan-shapes32")
    parser.add_argument("--seed", default="1")
    parser.add_argument("--class", dest="class_", default="square")
    parser.add_argument("--position", type=int, default=235, help="zoom slider position (200 is alpha 1)")
    args = parser.parse_args()
    saves = tempfile.mkdtemp()
    server = subprocess.Popen([sys.executable, "-m", "steer.cli", "explore", "--model", args.model, "--port", "0",
                               "--save-dir", saves], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 120)
        line = server.stdout.readline() if ready else ""
        url = re.search(r"http://\S+/", line).group(0)
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            # the viewport itself, not the window around it, gets the size
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": 960, "height": 490, "deviceScaleFactor": 1, "mobile": False})
            driver.get(url)
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
            Select(driver.find_element(By.ID, "class")).select_by_value(args.class_)
            seed = driver.find_element(By.ID, "seed")
            seed.clear()
            seed.send_keys(args.seed)
            driver.execute_script("const s = document.getElementById('alpha'); s.value = arguments[0];"
                                  "s.dispatchEvent(new Event('input'));", str(args.position))
            done = ("const q = document.getElementById('{}').dataset.query || '';"
                    "return q.includes('seed={}') && q.includes('class={}')")
            wait.until(lambda d: d.execute_script(done.format("strip", args.seed, args.class_)))
            wait.until(lambda d: d.execute_script(
                done.format("image", args.seed, args.class_) + " && Number(new URLSearchParams(q.split('?')[1])"
                ".get('alpha')) === alphaAt(document.getElementById('alpha').value)"))
            driver.execute_script("document.activeElement.blur()")
            time.sleep(0.5)
            driver.save_screenshot(args.out)
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
