"""Time the default Reconstruct request in headless Chromium: click -> curves and frame plot rendered.

    python scripts/e2e_timing.py [--runs 2] [--port 7861] [--precision auto|fp32|bf16] [--all-models]
        [--frames 17]

Starts ``python app.py`` on loopback, opens the page, clicks *Reconstruct* with the page's defaults
(bundled example, default frames/size/models) and prints one JSON line per run. The first run is cold
(models loaded at start-up, nothing cached); later runs of the same request are answered from the
result cache, which is what a repeat visitor or a workshop gets. ``--precision`` starts the server with that
default (``VAELAB_PRECISION``); ``--all-models`` ticks every trained model and ``--frames`` sets the Frames slider
(the nine-model request of docs/PERFORMANCE.md: ``--all-models --frames 17``). Each line also gives the model
time and the precision/device that ran, read from the results table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--port", type=int, default=7861)
    ap.add_argument("--warm-wait", type=float, default=60.0, help="seconds to let start-up warm-up finish")
    ap.add_argument("--precision", default=None, help="server default precision (VAELAB_PRECISION)")
    ap.add_argument("--all-models", action="store_true", help="tick every trained model")
    ap.add_argument("--frames", type=int, default=0, help="Frames slider (0 = the page's default)")
    a = ap.parse_args()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_SERVER_PORT": str(a.port), **({"VAELAB_PRECISION": a.precision} if a.precision else {})}
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{a.port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(a.warm_wait)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#run", state="visible")
            if a.all_models:
                for b in page.locator("#models input[type=checkbox]").all():
                    b.check()
            if a.frames:
                box = page.locator("#frames input[type=number]")
                box.fill(str(a.frames))
                box.press("Enter")
            models = [b.get_attribute("name") for b in page.locator("#models input[type=checkbox]:checked").all()]
            for i in range(a.runs):
                t0 = time.perf_counter()
                page.locator("#run").click()
                # rendered: the plots appear (first run) or the notes say the results were reused (repeat);
                # refused: the page shows one error line (a work cap, memory rule, ...): report it, don't wait on
                done = ("() => document.querySelectorAll('#curves .js-plotly-plot, #frame-plot .js-plotly-plot')"
                        ".length >= 2" if i == 0 else
                        "() => (document.querySelector('#vaelab-notes')?.innerText || '').includes('Cached:')")
                page.wait_for_function(f"() => ({done})() || document.querySelector('.toast-body') !== null",
                                       timeout=600_000)
                dt = round(time.perf_counter() - t0, 2)
                if page.locator(".toast-body").count():
                    print(json.dumps({"run": i + 1, "models": models, "refused": page.locator(".toast-body").first
                                      .inner_text(), "after_s": dt}), flush=True)
                    break
                rows = page.locator("#table tbody tr").all_inner_texts()
                model_s = ran = None
                try:  # columns: ... encode s, decode s, ..., ran on (see ui.app._table)
                    heads = page.locator("#table thead th").all_inner_texts()
                    cells = [r.split("\t") for r in rows]
                    ie, idd = heads.index("encode s"), heads.index("decode s")
                    model_s = round(sum(float(c[ie]) + float(c[idd]) for c in cells), 2)
                    ran = sorted({c[heads.index("ran on")] for c in cells})
                except (ValueError, IndexError):
                    pass
                print(json.dumps({"run": i + 1, "models": models, "click_to_rendered_s": dt, "model_s": model_s,
                                  "ran_on": ran, "loadavg": os.getloadavg()[0]}), flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
