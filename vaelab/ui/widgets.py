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


def clip_settings(max_frames: int, default_frames: int, min_size: int, max_size: int, default_size: int,
                  prefix: str = "", size_info: str | None = None) -> tuple[gr.Slider, gr.Slider]:
    """Frames (from the start) and working resolution (short side) sliders side by side; ids ``{prefix}frames``
    and ``{prefix}size``."""
    with gr.Row():
        frames = gr.Slider(1, max_frames, value=default_frames, step=1, label="Frames (from the start)",
                           elem_id=f"{prefix}frames")
        size = gr.Slider(min_size, max_size, value=default_size, step=16, label="Working resolution (short side, px)",
                         elem_id=f"{prefix}size", info=size_info)
    return frames, size


def device_choice(elem_id: str) -> gr.Radio:
    return gr.Radio(["auto", "cpu", "cuda"], value="auto", label="Device", elem_id=elem_id)


def precision_choice(elem_id: str) -> gr.Radio:
    """Number format next to Device: auto picks per device (``vaelab.device.resolve_precision``); the default is
    ``VAELAB_PRECISION`` (``vaelab serve --precision``) or auto. What actually ran is shown with each result."""
    from ..device import PRECISIONS, cpu_bf16_native, requested_precision

    try:
        default = requested_precision(None)
    except ValueError:
        default = "auto"
    native, how = cpu_bf16_native()
    return gr.Radio(list(PRECISIONS), value=default, label="Precision", elem_id=elem_id,
                    info=f"auto: bf16 where the hardware has it (this CPU: {'yes' if native else 'no'}, {how}), "
                         "fp16 on other GPUs, else fp32; fp16 is GPU-only")
