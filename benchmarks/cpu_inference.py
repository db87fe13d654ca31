"""CPU prediction: pcatools' sliding window (channels-last copy of the model) against MONAI's own call.

Times one demo-sized case (2 x 125 x 88 x 240 voxels at 4 mm, 32^3 windows, overlap 0.25,
Gaussian blending, 8 windows a pass, the demo profile's threads) through
:func:`pcatools.inference.sliding_window_logits` and through
:func:`monai.inferers.sliding_window_inference` with the plain model, for each demo network
(untrained; the time does not depend on the weights), alternating the two ``--rounds`` times, and
prints the ratio and the largest logit difference. Torch is held to AVX2 as the ``pcatools``
command holds it.

    .venv/bin/python benchmarks/cpu_inference.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pcatools.reproducibility import hold_cpu_isa

    hold_cpu_isa()
    import torch
    from monai.inferers import sliding_window_inference

    from pcatools.inference import sliding_window_logits
    from pcatools.models import build_model
    from pcatools.study import PROFILES

    demo = PROFILES["demo"]
    torch.set_num_threads(demo.threads)
    image = torch.rand(1, 2, 125, 88, 240)
    for network in demo.networks:
        cfg = demo.train_config(network, "dice")
        torch.manual_seed(0)
        model = build_model(network, **cfg.model_overrides).eval()
        window = cfg.sliding_window
        times: dict[str, list[float]] = {"pcatools": [], "monai": []}
        for _ in range(args.rounds):
            t = time.perf_counter()
            ours = sliding_window_logits(model, image, window, device="cpu")
            times["pcatools"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with torch.no_grad():
                peer = sliding_window_inference(
                    image,
                    window.roi_size,
                    window.sw_batch_size,
                    model,
                    overlap=window.overlap,
                    mode=window.mode,
                )
            times["monai"].append(time.perf_counter() - t)
        best = {k: min(v) for k, v in times.items()}
        print(
            f"{network}: pcatools {best['pcatools']:.2f} s, MONAI {best['monai']:.2f} s a case "
            f"(best of {args.rounds}); MONAI / pcatools = {best['monai'] / best['pcatools']:.2f}x; "
            f"largest logit difference {float((ours - peer).abs().max()):.1e}",
            flush=True,
        )


if __name__ == "__main__":
    main()
