"""The ``survseg`` command line: demo, preprocess, benchmark, fit, predict."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _shape(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().replace("x", ",").split(",") if p]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape must be N or DxHxW; got {text!r}")
    return tuple(parts)


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in ``--help``, except the empty ones (None, off flags)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(
        args.output,
        n_patients=args.n_patients,
        shape=args.shape,
        field_of_view_mm=args.fov,
        event_rate=args.event_rate,
        n_folds=args.folds,
        iterations=args.iterations,
        models=args.models,
        random_state=args.seed,
        n_jobs=args.n_jobs,
        plots=not args.no_plots,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    defaults = _DefaultsHelp  # --help shows the defaults
    parser = argparse.ArgumentParser(
        prog="survseg",
        description="Survival prediction and tumour segmentation from 3D PET/CT.",
        formatter_class=defaults,
    )
    parser.add_argument("--version", action="version", version=f"survseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="benchmark every model on a synthetic PET/CT cohort", formatter_class=defaults
    )
    demo.add_argument("--output", default="survseg_demo_output", help="output folder")
    demo.add_argument("--n-patients", type=int, default=300, help="patients in the cohort")
    demo.add_argument("--shape", type=_shape, default="24", help="volume size, e.g. 24 or 32x32x24")
    demo.add_argument(
        "--fov",
        type=float,
        default=144.0,
        help="field of view in mm along the longest axis (voxels of FOV / max(shape) mm)",
    )
    demo.add_argument(
        "--event-rate", type=float, default=0.5, help="expected fraction of observed events"
    )
    demo.add_argument("--folds", type=int, default=3, help="cross-validation folds")
    demo.add_argument(
        "--iterations", type=int, default=200, help="training iterations of the deep models"
    )
    demo.add_argument("--models", nargs="+", help="subset of the demo models (default: all)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the cohort and the models")
    demo.add_argument(
        "--n-jobs",
        type=int,
        default=2,
        help="(model, fold) fits in parallel (joblib; -1: all cores)",
    )
    demo.add_argument("--no-plots", action="store_true", help="skip the figures")
    demo.set_defaults(func=_cmd_demo)

    from .commands import add_data_commands

    add_data_commands(sub)
    for command in sub.choices.values():
        command.formatter_class = defaults
    return parser


def main(argv=None) -> int:
    """Entry point of the ``survseg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (OSError, ValueError) as exc:
        # user errors (missing or unwritable files, bad manifests, model files or parameters):
        # one clear line, no traceback
        print(f"survseg {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    """One line for an error; an OSError without a message gets its errno text and file."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc).strip() or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
