"""VAE Lab: see what image and video VAEs do to a clip.

Layout: ``io`` (decode/encode video), ``models`` (one file per family + registry), ``engine``
(device, chunked inference, timing), ``metrics``, ``analysis`` (wavelets, complexity),
``pipeline`` (clip -> results as data), ``viz`` (Plotly figures), ``ui`` (Gradio wiring),
``train`` (the training loop), ``cli``.
"""
__version__ = "0.1.0"
