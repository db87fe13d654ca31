"""The study end to end on a GPU: the demo grid, its re-run, and an interrupted training resumed.

Part of ``benchmarks/gpu.sh`` (issue 5: "the same code runs on real data and GPUs"). What it checks
and measures on CUDA, in one process:

1. :func:`pcatools.study.run_study` with a profile (default ``demo``: 40 synthetic cases at 4 mm,
   2 networks x 3 losses, 400-600 steps each) -- the training loop with AMP, checkpoints, sliding-window
   prediction, evaluation, statistics and figures. Prints the study's wall time, each model's
   training time and data wait, and Table 1's mean DSC, to compare with the CPU run in the README (same seed; cuDNN is not bit-deterministic,
   so the numbers may differ a little).
2. ``run_study`` again on the same folder: everything is found done, so it only re-evaluates
   (the time shows what "continue where it stopped" costs).
3. :func:`pcatools.training.train` stopped after half its epochs (``max_epochs_this_call``) and
   called again: it must resume from the last checkpoint (epoch, AMP scaler state) and end at the
   full epoch count.

Run: ``python benchmarks/gpu_study.py [--profile demo] [--epochs N] [--out DIR]``
(``--profile ci`` for a seconds-long check of the script on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pcatools.study import get_profile, run_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--no-resume-check", action="store_true")
    args = ap.parse_args()

    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    prof = get_profile(args.profile, **overrides)
    out = Path(args.out or tempfile.mkdtemp(prefix="pcatools-gpu-study-"))
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"# device: {dev}; torch {torch.__version__}; profile {prof.name}, {prof.n_cases} cases at "
        f"{prof.spacing[0]:g} mm, {prof.epochs} epochs x {prof.max_steps_per_epoch} steps, patch {prof.patch_size}"
    )

    t0 = time.perf_counter()
    study = run_study(out / "study", profile=prof, seed=0, progress=False)
    t_study = time.perf_counter() - t0
    print(f"study: {t_study:.1f} s for {len(prof.networks) * len(prof.losses)} models")
    for key in sorted(p.name for p in (out / "study" / "models").iterdir()):
        hist = out / "study" / "models" / key / "history.csv"
        if hist.exists():
            h = pd.read_csv(hist)
            wait = h["data_time_s"].sum() / max(h["data_time_s"].sum() + h["compute_time_s"].sum(), 1e-9)
            print(
                f"  {key}: {len(h)} epochs in {h['time_s'].sum():.1f} s (data wait {100 * wait:.0f} %), "
                f"last train loss {h['train_loss'].iloc[-1]:.3f}, best val DSC {h['val_dice'].max():.3f}"
            )
    t1 = study.table1
    print(
        t1[[c for c in t1.columns if c in ("Network", "Loss", "DSC mean", "TP", "FP", "FN")]].to_string(
            index=False
        )
    )

    t0 = time.perf_counter()
    run_study(out / "study", profile=prof, seed=0, progress=False)
    print(f"study re-run on the finished folder: {time.perf_counter() - t0:.1f} s")

    if args.no_resume_check:
        return
    from pcatools.training import load_checkpoint, train

    split = study.manifest
    config = prof.train_config("segresnet", "l1dfl", seed=0).replace(epochs=4, val_every=2, workers=0)
    first = train(split, out / "resume", config, max_epochs_this_call=2, progress=False)
    second = train(split, out / "resume", config, progress=False)
    ck = load_checkpoint(out / "resume" / "last.pt", map_location="cpu", kind="last")
    scaler = ck.get("scaler") or {}
    print(
        f"resume: first call completed={first.completed} at epoch {len(first.history)}; "
        f"second call completed={second.completed}, epochs in history {list(second.history['epoch'])}, "
        f"checkpoint epoch {ck.get('epoch')}, AMP scaler state saved: {bool(scaler)} "
        f"(scale {scaler.get('scale', 'n/a')}), config amp {ck.get('config', {}).get('amp')}"
    )
    ok = (not first.completed) and second.completed and list(second.history["epoch"]) == [1, 2, 3, 4]
    print("resume check:", "PASS" if ok else "FAIL")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
