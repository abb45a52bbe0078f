"""Screenshots of what each lab family does to *held-out* content, for docs/TRAINING.md ("What each family shows").

    python scripts/family_screenshots.py --models hvdm,vidtwin --out docs/img

Writes the last 20 % of bikes.mp4 (never trained on) and a held-out photograph pan as MP4s, starts ``python
app.py`` on a free loopback port, and in headless Chromium (the system binary) runs the Reconstruct tab on each
clip for each model, saving the gallery and heatmaps; for vidtwin it also runs the Structure x Dynamics tab
with the two held-out clips. Needs the test tools (playwright, Debian chromium) and, for the photo clip,
plasma-workspace-wallpapers. Never run in CI.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def heldout_mp4s(out: Path, frames: int) -> dict[str, Path]:
    from vaelab.io import write_mp4
    from vaelab.train.data import heldout_clips, heldout_sets

    clips = {"bikes-heldout": heldout_clips(128)["bikes"][:frames]}
    photos = heldout_sets(128, frames).get("photos", {})
    for name, clip in sorted(photos.items())[:1]:
        clips[name.replace("wallpaper:", "") + "-heldout"] = clip
    return {k: write_mp4(v, out / f"{k}.mp4", fps=12.0) for k, v in clips.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="hvdm,vidtwin")
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    from conftest import free_port, launch_app
    from playwright.sync_api import expect, sync_playwright
    from test_browser import CHROMIUM_ARGS, choose_cpu, choose_models, open_app, run_and_wait, set_slider

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.models.split(",") if n]
    tmp = Path(tempfile.mkdtemp())
    clips = heldout_mp4s(tmp, args.frames)
    env = dict(os.environ, GRADIO_SERVER_PORT=str(free_port()), GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with launch_app(env, tmp / "app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for name in names:
            for clip, path in clips.items():
                with open_app(browser, url) as page:
                    page.set_input_files("#upload input[type=file]", str(path))
                    choose_models(page, [name])
                    set_slider(page, "frames", args.frames)
                    set_slider(page, "size", 128)
                    choose_cpu(page)
                    run_and_wait(page)
                    expect(page.locator("#table")).to_contain_text(name, timeout=120_000)
                    page.locator("#rec-gallery").screenshot(path=str(out / f"{name}_{clip}_reconstruct.png"))
                    page.screenshot(path=str(tmp / f"{name}_{clip}_page.png"), full_page=True)
                    print("wrote", out / f"{name}_{clip}_reconstruct.png", flush=True)
            if name == "vidtwin" and len(clips) >= 2:
                a, b = list(clips.values())[:2]
                with open_app(browser, url) as page:
                    page.get_by_role("tab", name="Structure x Dynamics").click()
                    page.set_input_files("#swap-upload-a input[type=file]", str(a))
                    page.set_input_files("#swap-upload-b input[type=file]", str(b))
                    set_slider(page, "swap-frames", args.frames)
                    set_slider(page, "swap-size", 128)
                    page.locator("#swap-device input[value=cpu]").check()
                    page.locator("#swap-run").click()
                    page.wait_for_selector("#swap-attention .js-plotly-plot", state="attached", timeout=600_000)
                    page.wait_for_selector("#swap-frame-plot .js-plotly-plot", state="attached", timeout=600_000)
                    for part in ("swap-frame-plot", "swap-attention", "swap-notes"):
                        page.locator(f"#{part}").screenshot(path=str(out / f"vidtwin_{part}.png"))
                    page.screenshot(path=str(tmp / "vidtwin_swap_page.png"), full_page=True)
                    print("wrote", out / "vidtwin_swap-*.png", "and the page in", tmp, flush=True)
        browser.close()
    print("full pages in", tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
