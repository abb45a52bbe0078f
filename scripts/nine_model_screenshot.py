"""Screenshot of the Reconstruct gallery and table with all nine lab models ticked on the bundled example (CPU).

    python scripts/nine_model_screenshot.py   # -> /tmp/nine_gallery.png, /tmp/nine_table.png
"""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "tests"))
from conftest import free_port, launch_app
from playwright.sync_api import sync_playwright
from test_browser import CHROMIUM_ARGS, choose_cpu, choose_models, open_app, run_and_wait

from vaelab import models

tmp = Path(tempfile.mkdtemp())
env = dict(os.environ, GRADIO_SERVER_PORT=str(free_port()), GRADIO_SERVER_NAME="127.0.0.1",
           GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
with launch_app(env, tmp / "app.log") as url, sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    with open_app(b, url) as page:
        choose_models(page, models.names())
        choose_cpu(page)
        run_and_wait(page)
        page.wait_for_timeout(1500)
        page.locator("#rec-gallery").screenshot(path="/tmp/nine_gallery.png")
        page.locator("#table").screenshot(path="/tmp/nine_table.png")
    b.close()
print("ok")
