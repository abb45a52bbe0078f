"""Components more than one tab builds the same way."""
from __future__ import annotations

import gradio as gr


def clip_inputs(examples: list[str], value: str | None, upload_id: str, example_id: str,
                what: str = "a video or an image") -> tuple[gr.File, gr.Dropdown]:
    """An upload box (which wins) and an example dropdown: the two ways every tab takes a clip."""
    upload = gr.File(label=f"Upload {what} (takes priority over the example)", file_types=["video", "image"],
                     type="filepath", elem_id=upload_id)
    example = gr.Dropdown(examples, value=value, label="...or an example", elem_id=example_id)
    return upload, example
