"""The one-line swap: vlfast inside a stock Qwen2.5-VL processor, on a tiny random model (no downloads).

    python examples/drop_in.py [--device cuda]

With a real checkpoint the swap is the same line:
``processor = patch_processor(AutoProcessor.from_pretrained(model_id), device=model.device, dtype=model.dtype)``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import skimage.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_qwen import build_model, build_processor, write_checkpoint_folder  # noqa: E402

from vlfast.errors import DeviceError  # noqa: E402
from vlfast.options import parse_device  # noqa: E402
from vlfast.processor import patch_processor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda[:N]")
    try:
        device = parse_device(parser.parse_args().device)
    except DeviceError as error:
        parser.error(str(error))

    with tempfile.TemporaryDirectory() as folder:
        stock = build_processor(write_checkpoint_folder(folder))
        model = build_model(stock.tokenizer).to(device)

        # The swap: same settings, outputs already on the model's device and in its dtype.
        processor = patch_processor(build_processor(folder), device=model.device, dtype=model.dtype)

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    image = skimage.data.astronaut()

    for name, candidate in (("stock", stock), ("vlfast", processor)):
        start = time.perf_counter()
        inputs = candidate(text=[prompt], images=[image], return_tensors="pt").to(device)
        elapsed = time.perf_counter() - start
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        new_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
        print(
            f"{name:>6}: pixel_values {tuple(inputs['pixel_values'].shape)} {inputs['pixel_values'].dtype} "
            f"on {inputs['pixel_values'].device} in {elapsed * 1e3:.1f} ms; generated {new_tokens}"
        )


if __name__ == "__main__":
    main()
