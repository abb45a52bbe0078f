"""VAE Lab web app (Hugging Face Spaces convention: `python app.py` serves the UI).

Binds to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT when set (Spaces sets them), else 127.0.0.1:7860.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from vaelab.ui.app import launch  # noqa: E402

if __name__ == "__main__":
    launch(host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
           port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
