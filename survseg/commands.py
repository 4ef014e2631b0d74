"""The data commands of the ``survseg`` CLI: preprocess, benchmark, fit, predict.

A *dataset folder* (``survseg preprocess`` output, see :mod:`survseg.data.store`) carries the
cohort, its outcomes, patient ids and each patient's geometry, so ``survseg predict`` can
write masks as NIfTI files that overlay the patient's original CT.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["add_data_commands", "make_model", "MODEL_NAMES"]

from .data.errors import naming_patients
from .registry import MODEL_NAMES


def make_model(name: str, params=None, *, random_state=0, units: str = "physical"):
    """A fresh estimator by its CLI name, with ``params`` applied by ``set_params``: the
    papers' settings of :func:`survseg.registry.make_model`.

    ``units`` says what the dataset's intensities are: ``"physical"`` (PET in SUV, CT in HU;
    ``survseg preprocess``'s default) gives the deep models the papers' per-patient
    normalisation and the radiomics extractors bin widths in SUV and HU; ``"normalised"``
    (``preprocess --intensity normalised``) uses the images as they are and a fixed bin count.
    Every model with radiomics (AdaMSS included) has an ``extractor``, so the dataset's voxel
    spacing reaches it as ``extractor__spacing``.
    """
    from .registry import make_model as registry_model

    return registry_model(name, params, units=units, random_state=random_state)


def _units(ds) -> str:
    """Intensity units of a dataset folder (folders written before this was recorded were
    normalised by ``preprocess``)."""
    return ds.metadata.get("intensity", "normalised")


def _parse_params(items) -> list[tuple[str | None, str, object]]:
    """``["max_iter=500", "AdaMSS:device=cpu"]`` -> ``[(None, "max_iter", 500), ("AdaMSS", "device", "cpu")]``.

    Values are Python literals where they parse as one (numbers, tuples, dicts, ``None``),
    strings otherwise. A ``MODEL:`` prefix restricts the parameter to that model.
    """
    params = []
    for item in items or ():
        key, sep, value = item.partition("=")
        model, colon, key = key.strip().rpartition(":")
        key = key.strip()
        if not sep or not key or (colon and model not in MODEL_NAMES):
            raise ValueError(
                f"--param expects key=value or MODEL:key=value (MODEL one of {list(MODEL_NAMES)}); "
                f"got {item!r}."
            )
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        params.append((model or None, key, value))
    return params


def _model_params(names, params, defaults=None) -> dict[str, dict]:
    """The ``--param`` settings of each model in ``names``: those it has.

    ``defaults`` (settings derived from the dataset, e.g. the radiomics voxel spacing) apply
    where the model has the parameter and ``--param`` does not set it. A parameter that none
    of the models has is an error (a typo would otherwise be silently ignored).
    """
    accepted = {name: set(make_model(name).get_params(deep=True)) for name in names}
    chosen = {
        name: {k: v for k, v in (defaults or {}).items() if k in accepted[name]} for name in names
    }
    for model, key, value in params:
        targets = [n for n in names if (model is None or n == model) and key in accepted[n]]
        if model is not None and model not in names:
            raise ValueError(
                f"--param {model}:{key}: {model} is not one of the models {list(names)}."
            )
        if not targets:
            pool = accepted[model] if model else set().union(*accepted.values())
            close = difflib.get_close_matches(key, sorted(pool), n=1)
            where = model or (names[0] if len(names) == 1 else f"any of the models {list(names)}")
            raise ValueError(
                f"--param {key!r} is not a parameter of {where}"
                + (f"; did you mean {close[0]!r}?" if close else ".")
            )
        for name in targets:
            chosen[name][key] = value
    return chosen


def _radiomics_spacing(ds) -> dict:
    """The dataset's voxel spacing (D, H, W order, mm) for the radiomics extractors.

    Without it pyradiomics would measure shape and texture in voxels, not millimetres. A
    cohort that carries its own ``'spacing'`` field needs nothing here (the extractors read
    it); this is for dataset folders written before the cohort carried it.
    """
    if "spacing" in (ds.X.dtype.names or ()):
        return {}
    grids = [g["grid"]["spacing"] for g in ds.geometries or ()]
    if not grids or any(not np.allclose(g, grids[0]) for g in grids):
        return {}
    spacing = [float(v) for v in reversed(grids[0])]  # (x, y, z) -> (D, H, W) = (z, y, x)
    return {"extractor__spacing": spacing, "features__spacing": spacing}


def _geometries(raw):
    """CaseGeometry objects from a dataset folder's JSON records (``None`` if absent)."""
    if not raw:
        return None
    from .preprocess.geometry import CaseGeometry, Grid

    def grid(d):
        return Grid(**{k: tuple(v) for k, v in d.items()})

    def opt(v):
        return None if v is None else tuple(v)

    return [
        CaseGeometry(
            grid=grid(g["grid"]),
            original=grid(g["original"]),
            transform=opt(g.get("transform")),
            transform_center=opt(g.get("transform_center")),
        )
        for g in raw
    ]


# --------------------------------------------------------------------------- preprocess


def _cmd_preprocess(args) -> int:
    from .data.store import save_dataset
    from .datasets import load_hecktor, load_manifest
    from .preprocess import Preprocessing

    size = tuple(args.crop_size) * (3 if len(args.crop_size) == 1 else 1)
    # "physical" keeps SUV and HU, so radiomics bins are in physical units; the deep models
    # then normalise each patient themselves (their ``intensity`` parameter)
    intensity = {} if args.intensity == "physical" else {"pet": "zscore", "ct": "window"}
    prep = Preprocessing(
        spacing=args.spacing,
        template=args.template,
        crop=None if args.crop == "none" else args.crop,
        crop_size=size,
        intensity=intensity,
    )
    common = dict(
        preprocessing=prep,
        n_jobs=args.n_jobs,
        memory=args.cache,
        verbose=args.verbose,
        return_geometry=True,
    )
    if args.clinical:
        common["clinical_columns"] = args.clinical
    if args.manifest:
        from .data.names import check_patient_ids

        manifest = Path(args.manifest)
        if manifest.is_file():  # ids name the predicted masks: refuse bad ones before the work
            table = pd.read_csv(manifest, dtype=str)
            if "patient_id" in table.columns:
                check_patient_ids(table["patient_id"].fillna(""), manifest.name)
        if args.new_patients and prep.crop == "tumour":
            raise ValueError(
                "--new-patients have no mask to centre the box on: use --crop fixed "
                "(with the training data's --crop-size) or --crop none."
            )
        X, y, ids, geoms = load_manifest(
            args.manifest,
            labels=args.labels,
            nodes_column=None if args.no_nodes else "auto",
            nodes_labels=args.nodes_labels,
            mask_column=None if args.new_patients else "mask",
            time_column=None if args.new_patients else "time",
            event_column=None if args.new_patients else "event",
            **common,
        )
    else:
        X, y, ids, geoms = load_hecktor(
            args.hecktor,
            labels=tuple(args.labels or (1,)),
            nodes_label=None if args.no_nodes else tuple(args.nodes_labels or (2,)),
            drop_empty_masks=args.drop_empty_masks,
            **common,
        )
    meta = {
        "source": str(args.manifest or args.hecktor),
        "spacing": args.spacing,
        "intensity": args.intensity,
        "crop": args.crop,
        "crop_size": size,
        "labels": args.labels,
        "nodes_labels": None if args.no_nodes else args.nodes_labels,
    }
    path = save_dataset(args.output, X, y, ids, geoms, meta)
    print(f"{len(X)} patients, fields {list(X.dtype.names)} -> {path}")
    return 0


# --------------------------------------------------------------------------- benchmark


def _ids(ds, test=None) -> dict:
    """Patient ids by row, for :func:`~survseg.data.errors.naming_patients`."""
    ids = {None: ds.patient_ids}
    if test is not None:
        ids["test"] = test.patient_ids
    return ids


def _cmd_benchmark(args) -> int:
    from .data.store import load_dataset
    from .evaluation.benchmark import benchmark

    params = _parse_params(args.param)
    if args.reference is not None and args.reference not in args.models:
        raise ValueError(f"--reference {args.reference} is not one of --models {args.models}.")
    ds = load_dataset(args.dataset)
    if ds.y is None:
        raise ValueError(f"{args.dataset} has no survival outcomes (y.npy); cannot benchmark.")
    settings = _model_params(args.models, params, _radiomics_spacing(ds))
    models = {
        name: make_model(name, settings[name], random_state=args.seed, units=_units(ds))
        for name in args.models
    }
    test = load_dataset(args.test) if args.test else None
    if test is not None and test.y is None:
        raise ValueError(f"--test {args.test} has no survival outcomes (y.npy).")
    with naming_patients(_ids(ds, test)):  # errors name patients by id, not by row
        result = benchmark(
            models,
            ds.X,
            ds.y,
            cv=args.folds,
            reference=args.reference,
            X_test=None if test is None else test.X,
            y_test=None if test is None else test.y,
            n_bootstrap=args.n_bootstrap,
            random_state=args.seed,
            n_jobs=args.n_jobs,
            output_dir=args.output,
            resume=args.resume,
            keep_models=not args.no_plots,
            verbose=int(args.verbose),
        )
    # predictions.csv numbers patients by row; name them with the datasets' patient ids
    predictions = result.predictions.copy()
    ids = np.asarray(ds.patient_ids, dtype=object)
    is_test = (predictions["set"] == "test").to_numpy()
    patient_id = np.empty(len(predictions), dtype=object)
    patient_id[~is_test] = ids[predictions["patient"].to_numpy()[~is_test]]
    if is_test.any():
        patient_id[is_test] = np.asarray(test.patient_ids, dtype=object)[
            predictions["patient"].to_numpy()[is_test]
        ]
    predictions.insert(predictions.columns.get_loc("patient") + 1, "patient_id", patient_id)
    predictions.to_csv(Path(args.output) / "predictions.csv", index=False)
    if not args.no_plots:
        from .demo import write_figures

        write_figures(args.output, ds.X, ds.y, result)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        print(result.table.to_string(index=False))
    return 0


# --------------------------------------------------------------------------- fit / predict


def _check_writable_file(path: Path) -> None:
    """Fail now, not after training, if ``path`` cannot be written."""
    import tempfile

    if path.is_dir():
        raise ValueError(f"--output {path} is a folder; give the model file's name.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".survseg-write-test-"):
            pass
    except OSError as exc:
        raise OSError(f"cannot write the model file {path}: {exc.strerror or exc}") from None


def _cmd_fit(args) -> int:
    from .data.store import load_dataset
    from .data.validation import cohort_signature
    from .persistence import save_model

    params = _parse_params(args.param)
    out = Path(args.output)
    _check_writable_file(out)
    ds = load_dataset(args.dataset)
    if ds.y is None:
        raise ValueError(f"{args.dataset} has no survival outcomes (y.npy); cannot fit.")
    settings = _model_params([args.model], params, _radiomics_spacing(ds))[args.model]
    model = make_model(args.model, settings, random_state=args.seed, units=_units(ds))
    if args.verbose:  # progress bars: radiomics extraction, training iterations, folds
        model.set_params(
            **{
                k: args.verbose
                for k in model.get_params(deep=True)
                if k == "verbose" or k.endswith("__verbose")
            }
        )
    with naming_patients(_ids(ds)):  # errors name patients by id, not by row
        model.fit(ds.X, ds.y)
    save_model(out, model, name=args.model, signature=cohort_signature(ds.X))
    print(
        f"fitted {args.model} on {len(ds.X)} patients; training C-index "
        f"{model.score(ds.X, ds.y):.3f} -> {out}"
    )
    return 0


def _has_network(model) -> bool:
    """Whether ``model`` or a step of it (a Pipeline) holds a fitted deep network."""
    if hasattr(model, "network_"):
        return True
    steps = getattr(model, "steps", None) or getattr(model, "transformer_list", None) or ()
    return any(_has_network(step) for _, step in steps)


def _check_against_training(header: dict, X, model, dataset) -> None:
    """The dataset against the training cohort recorded in the model file's header."""
    from .data.validation import check_fitted_cohort

    signature = header.get("cohort")
    if not signature:
        return
    segmenting = hasattr(model, "predict_mask") and not getattr(model, "mask_input", False)
    try:
        check_fitted_cohort(
            model,
            X,
            signature=signature,
            name=header.get("name"),
            # a segmenting model predicts the masks; node masks are only needed by radiomics
            optional=("mask", "nodes") if segmenting else (),
            # the deep networks learned at one volume size; radiomics features are in mm
            check_shape=_has_network(model),
        )
    except ValueError as exc:
        raise ValueError(f"{dataset}: {exc}") from None


#: ``masks/labels.json`` of a model that segments several regions (HECKTOR's labels).
_LABEL_NAMES = {"tumour": "tumour (GTVp)", "nodes": "lymph nodes (GTVn)"}


def _predicted_files(model, ds, out: Path, args) -> tuple[dict, tuple]:
    """The files predict will write, ``{kind: [path]}``, and the segmented regions; every
    path is checked (safe id, inside ``--output``) before anything is computed."""
    from .data.names import resolve_inside, safe_file_name

    files = {"risk": [out / "risk.csv"]}
    if hasattr(model, "predict_survival_function"):
        files["survival"] = [out / "survival.csv"]
    regions = ()
    if hasattr(model, "predict_mask") and not args.no_masks:
        regions = tuple(getattr(model, "regions_", None) or ("tumour",))
        files["masks"] = [
            Path(resolve_inside(out / "masks", safe_file_name(pid) + ".nii.gz", "mask file"))
            for pid in ds.patient_ids
        ]
        if len(regions) > 1:
            files["labels"] = [out / "masks" / "labels.json"]
    return files, regions


def _refuse_overwrite(files: dict, out: Path) -> None:
    existing = [p for paths in files.values() for p in paths if p.exists() or p.is_symlink()]
    if existing:
        names = [str(p.relative_to(out)) for p in existing[:5]]
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise FileExistsError(
            f"--output {out} already holds {names}{more} from an earlier run (or yours); "
            "nothing was written. Give another --output folder, or --overwrite to replace them."
        )


def _cmd_predict(args) -> int:
    from .data.store import load_dataset
    from .persistence import load_model

    loaded = load_model(args.model, trusted=args.trust_model)
    ds = load_dataset(args.dataset)
    with naming_patients(_ids(ds)):  # errors name patients by id, not by row
        return _predict(args, loaded.model, loaded.header, ds)


def _predict(args, model, header, ds) -> int:
    """Risks, survival curves and NIfTI masks of ``ds`` written under ``args.output``."""
    from .data.io import write_image

    _check_against_training(header, ds.X, model, args.dataset)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {out} is a file; give a folder.")
    files, regions = _predicted_files(model, ds, out, args)
    if not args.overwrite:
        _refuse_overwrite(files, out)
    out.mkdir(parents=True, exist_ok=True)
    risk = model.predict(ds.X)
    pd.DataFrame({"patient_id": ds.patient_ids, "risk": risk}).to_csv(out / "risk.csv", index=False)
    written = ["risk.csv"]
    if "survival" in files:
        fns = model.predict_survival_function(ds.X)
        times = (
            np.asarray(args.times)
            if args.times
            else np.unique(np.quantile(fns[0].x, np.linspace(0, 1, 11)))
        )
        surv = np.vstack([fn(np.clip(times, fn.x[0], fn.x[-1])) for fn in fns])
        frame = pd.DataFrame(surv, columns=[f"S({t:g})" for t in times])
        frame.insert(0, "patient_id", ds.patient_ids)
        frame.to_csv(out / "survival.csv", index=False)
        written.append("survival.csv")
    if "masks" in files:
        # one label image per patient: 1 = tumour, 2 = nodes (HECKTOR's GTVp / GTVn)
        if len(regions) > 1:
            masks = model.predict_label_map(ds.X)
        else:
            masks = model.predict_mask(ds.X)
        geoms = _geometries(ds.geometries)
        (out / "masks").mkdir(exist_ok=True)
        if geoms is None:
            warnings.warn(
                "the dataset has no geometry: masks are written on the preprocessed "
                "grid with unit spacing, not in the patients' original space.",
                stacklevel=2,
            )
        for i, file in enumerate(files["masks"]):
            if geoms is None:
                import SimpleITK as sitk

                image = sitk.GetImageFromArray(np.asarray(masks[i], dtype=np.uint8))
            else:
                from .preprocess.geometry import to_original_space

                image = to_original_space(np.asarray(masks[i], dtype=np.uint8), geoms[i])
            write_image(image, file)
        labels = "labels " + ", ".join(f"{k + 1} = {r}" for k, r in enumerate(regions))
        if "labels" in files:
            legend = {"0": "background"}
            legend.update({str(k + 1): _LABEL_NAMES.get(r, r) for k, r in enumerate(regions)})
            files["labels"][0].write_text(json.dumps(legend, indent=2) + "\n")
        written.append(f"masks/ ({len(ds.patient_ids)} NIfTI files, {labels})")
    print(
        f"predicted {len(ds.X)} patients with {header.get('name') or type(model).__name__} -> "
        f"{out}: {', '.join(written)}"
    )
    return 0


# --------------------------------------------------------------------------- parser


def add_data_commands(sub) -> None:
    """Register preprocess, benchmark, fit and predict on an argparse sub-parser group."""
    pre = sub.add_parser("preprocess", help="manifest or HECKTOR folder -> dataset folder")
    src = pre.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="CSV: patient_id, ct, pet, mask, time, event, clinical...")
    src.add_argument(
        "--hecktor", help="HECKTOR 2022 training folder (imagesTr/, labelsTr/, endpoint CSV)"
    )
    pre.add_argument("--output", required=True, help="dataset folder to write")
    pre.add_argument("--spacing", type=float, default=1.0, help="isotropic voxel size in mm")
    pre.add_argument("--crop", choices=("tumour", "fixed", "none"), default="tumour")
    pre.add_argument(
        "--crop-size",
        type=int,
        nargs="+",
        default=[160],
        help="N or D H W voxels (the arrays' shape)",
    )
    pre.add_argument("--template", help="template CT for rigid registration (DeepMTS)")
    pre.add_argument("--labels", type=int, nargs="+", help="labels forming the mask (HECKTOR: 1)")
    pre.add_argument(
        "--nodes-labels",
        type=int,
        nargs="+",
        help="labels forming the lymph-node mask, field 'nodes' (HECKTOR: 2, the default; "
        "manifest: its 'nodes' column, default any non-zero label)",
    )
    pre.add_argument(
        "--no-nodes", action="store_true", help="do not keep lymph-node masks (no 'nodes' field)"
    )
    pre.add_argument(
        "--intensity",
        choices=("physical", "normalised"),
        default="physical",
        help="keep PET in SUV and CT in HU (default; the deep models normalise each "
        "patient themselves) or store PET z-scored and CT windowed to [-1, 1]",
    )
    pre.add_argument(
        "--new-patients",
        action="store_true",
        help="manifest of patients to predict: no mask, time or event columns",
    )
    pre.add_argument(
        "--drop-empty-masks",
        action="store_true",
        help="HECKTOR: leave out (with a warning) patients without the --labels",
    )
    pre.add_argument("--clinical", nargs="+", help="clinical columns to keep")
    pre.add_argument("--n-jobs", type=int, default=None)
    pre.add_argument("--cache", help="cache folder (joblib.Memory)")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.set_defaults(func=_cmd_preprocess)

    bench = sub.add_parser("benchmark", help="cross-validated comparison table with p-values")
    bench.add_argument("dataset", help="dataset folder (survseg preprocess)")
    bench.add_argument(
        "--models", nargs="+", default=["RadiomicsCox", "DeepMTS", "AdaMSS"], choices=MODEL_NAMES
    )
    bench.add_argument("--reference", help="model the p-values compare against (default: first)")
    bench.add_argument("--test", help="external test dataset folder (scored by the fold ensemble)")
    bench.add_argument("--folds", type=int, default=5)
    bench.add_argument(
        "--param",
        nargs="*",
        help="key=value set on every model that has it; MODEL:key=value on that model only",
    )
    bench.add_argument("--n-bootstrap", type=int, default=1000)
    bench.add_argument("--n-jobs", type=int, default=None, help="folds in parallel")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--output", default="survseg_benchmark")
    bench.add_argument("--no-plots", action="store_true")
    bench.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse fold files in --output made by the same model, parameters, data and "
        "folds (default); --no-resume retrains every fold",
    )
    bench.add_argument("-v", "--verbose", action="store_true", help="per-fold progress lines")
    bench.set_defaults(func=_cmd_benchmark)

    fit = sub.add_parser("fit", help="fit one model on a dataset folder and save it")
    fit.add_argument("dataset")
    fit.add_argument("--model", required=True, choices=MODEL_NAMES)
    fit.add_argument("--param", nargs="*", help="key=value estimator parameters (Python literals)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument(
        "--output", required=True, help="model file to write (a survseg model file, signed)"
    )
    fit.add_argument(
        "-v", "--verbose", action="count", default=0, help="progress bars (extraction, training)"
    )
    fit.set_defaults(func=_cmd_fit)

    pred = sub.add_parser("predict", help="risks, survival curves and NIfTI masks for new patients")
    pred.add_argument("model", help="model file from `survseg fit`")
    pred.add_argument("dataset", help="dataset folder (survseg preprocess)")
    pred.add_argument("--output", required=True, help="output folder")
    pred.add_argument("--times", type=float, nargs="+", help="times for survival.csv")
    pred.add_argument("--no-masks", action="store_true")
    pred.add_argument(
        "--overwrite",
        action="store_true",
        help="replace risk.csv, survival.csv and masks/ of an earlier run in --output "
        "(default: refuse, before computing anything)",
    )
    pred.add_argument(
        "--trust-model",
        action="store_true",
        help="load a model file not signed with your key (it is unpickled: runs its code)",
    )
    pred.set_defaults(func=_cmd_predict)
