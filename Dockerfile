# VAE Lab, CPU image: docker build -t vaelab . && docker run -p 7860:7860 vaelab
# Build with --build-arg WITH_LPIPS=0 to skip baking the LPIPS AlexNet backbone (the app then says "LPIPS unavailable").
FROM python:3.11-slim

ARG WITH_LPIPS=1
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 \
    TORCH_HOME=/home/vaelab/.cache/torch

RUN useradd --create-home --uid 1000 vaelab
WORKDIR /home/vaelab/app

# CPU wheels of the pinned pair keep the image small; the pins match pyproject.toml.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY --chown=vaelab:vaelab pyproject.toml README.md app.py ./
COPY --chown=vaelab:vaelab vaelab ./vaelab
COPY --chown=vaelab:vaelab assets ./assets
RUN pip install . && python -c "import vaelab.models as m; [m.load(n, device='cpu') for n in m.names()]"

USER vaelab
# torchvision caches the AlexNet backbone under $TORCH_HOME/hub/checkpoints; LPIPS appears when it is there.
RUN if [ "$WITH_LPIPS" = "1" ]; then python -c "import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')"; fi

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)" || exit 1
CMD ["python", "app.py"]
