"""Static checks of what a newcomer and CI run: the two README commands, .ci/run, pins, Dockerfile."""
from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_readme_has_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && python app.py" in readme
    assert "bash scripts/test.sh" in readme
    ci = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert "bash scripts/test.sh" in ci


def test_pins():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
    gradio = next(d for d in deps if d.startswith("gradio"))
    assert re.fullmatch(r"gradio>=6\.(1[6-9]|[2-9]\d)(\.\d+)?", gradio), gradio
    mp = next(d for d in deps if d.startswith("python-multipart"))
    assert mp == "python-multipart>=0.0.26"


def test_test_script_never_downloads_a_browser():
    script = (ROOT / "scripts/test.sh").read_text()
    assert "playwright install" not in script
    assert "apt-get install" in script and "chromium" in script


def test_dockerfile_is_slim_non_root_pinned_and_healthchecked():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    text = "\n".join(lines)
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M), "must run as a non-root user"
    assert "HEALTHCHECK" in text and "EXPOSE 7860" in text
    assert "torch==2.14.1" in text and "torchvision==0.29.1" in text
    assert 'CMD ["python", "app.py"]' in text
    assert "COPY --chown=vaelab:vaelab assets" in text, "lab weights are baked into the image"
    assert "playwright install" not in text


def test_weights_are_small_fp16_safetensors():
    from safetensors import safe_open

    files = sorted((ROOT / "assets/weights").glob("*.safetensors"))
    assert files
    for f in files:
        assert f.stat().st_size < 20 * 1024**2, f
        with safe_open(str(f), framework="pt") as st:
            dtypes = {str(st.get_slice(k).get_dtype()) for k in st.keys()}
        assert dtypes <= {"F16", "I64"}, (f.name, dtypes)


def test_readme_has_valid_spaces_metadata():
    import yaml

    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    major, minor = (int(v) for v in str(meta["sdk_version"]).split(".")[:2])
    assert (major, minor) >= (6, 16), "the Space must run a Gradio with the file-handling fixes"
    assert 0 < len(meta["short_description"]) <= 60
    assert (ROOT / "requirements.txt").read_text().splitlines()[-1].strip() == "."


def test_app_binds_to_the_space_host_and_port():
    src = (ROOT / "app.py").read_text()
    assert 'os.environ.get("GRADIO_SERVER_NAME"' in src and 'os.environ.get("GRADIO_SERVER_PORT"' in src
