"""Radiomics of several regions: node burden against scipy.ndimage and analytic volumes,
peritumoral shells against a brute-force distance and analytic shell volumes, node and shell
features against pyradiomics called directly, patients without nodes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import featureextractor
from scipy import ndimage
from scipy.spatial import cKDTree
from sklearn.base import clone

from survseg.data.cohort import volumes
from survseg.radiomics import RadiomicsExtractor
from survseg.radiomics.compute import node_burden, shell_masks

pytestmark = [
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:with bin width:UserWarning"),  # tiny phantoms
]

SPACING = (2.0, 1.0, 1.5)  # (D, H, W) mm, anisotropic
SHAPE = (24, 40, 32)
FIRSTORDER = dict(feature_classes=["firstorder", "shape"], image_types=["original"])


def ball(centre_mm, radius_mm, shape=SHAPE, spacing=SPACING):
    """Voxels whose centre lies within ``radius_mm`` of ``centre_mm`` (physical, D/H/W)."""
    grid = np.indices(shape, dtype=float) * np.asarray(spacing)[:, None, None, None]
    d2 = sum((g - c) ** 2 for g, c in zip(grid, centre_mm, strict=True))
    return (d2 <= radius_mm**2).astype(np.uint8)


def two_node_patient():
    nodes = ball((12.0, 10.0, 10.0), 5.0) | ball((30.0, 28.0, 30.0), 6.0)
    tumour = ball((24.0, 25.0, 12.0), 6.0)
    return tumour, nodes


def direct(image, mask, spacing_dhw, classes):
    """pyradiomics on hand-built SimpleITK images (the reference)."""
    img = sitk.GetImageFromArray(image.astype(np.float32))
    img.SetSpacing(tuple(reversed(spacing_dhw)))
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.SetSpacing(tuple(reversed(spacing_dhw)))
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=0.5, preCrop=True)
    ext.disableAllFeatures()
    ext.enableFeaturesByName(**{c: [] for c in classes})
    result = ext.execute(img, msk)
    return {k: float(np.real(v)) for k, v in result.items() if not k.startswith("diagnostics_")}


def test_node_burden_against_scipy_and_analytic_volumes():
    _, nodes = two_node_patient()
    rng = np.random.default_rng(0)
    pet = rng.uniform(0.5, 1.5, SHAPE) + 6.0 * nodes
    voxel = np.prod(SPACING)
    got = node_burden(nodes, {"pet": pet}, SPACING)
    _, count = ndimage.label(nodes, structure=np.ones((3, 3, 3)))
    assert got["Count"] == count == 2
    assert got["Present"] == 1.0
    assert got["Volume"] == pytest.approx(nodes.sum() * voxel)
    # volumes in mm^3 despite anisotropic voxels: the two balls' 4/3 pi r^3
    assert got["Volume"] == pytest.approx(4 / 3 * np.pi * (5.0**3 + 6.0**3), rel=0.05)
    assert got["LargestVolume"] == pytest.approx(4 / 3 * np.pi * 6.0**3, rel=0.05)
    assert got["pet_Integral"] == pytest.approx(pet[nodes > 0].sum() * voxel)
    assert got["pet_Maximum"] == pytest.approx(pet[nodes > 0].max())
    # diagonal contact joins two nodes into one (26-connectivity); a gap separates them
    touching = np.zeros((6, 6, 6), np.uint8)
    touching[1, 1, 1] = touching[2, 2, 2] = 1
    assert node_burden(touching, {}, (1, 1, 1))["Count"] == 1
    touching[2, 2, 2], touching[3, 3, 3] = 0, 1
    assert node_burden(touching, {}, (1, 1, 1))["Count"] == 2


def test_node_burden_of_no_nodes_is_zero():
    got = node_burden(np.zeros(SHAPE, np.uint8), {"pet": np.ones(SHAPE)}, SPACING)
    assert got == dict.fromkeys(
        ["Present", "Count", "Volume", "LargestVolume", "pet_Integral", "pet_Maximum"], 0.0
    )


@pytest.mark.parametrize("distance", [3.0, 6.0])
def test_shell_equals_brute_force_distance_and_analytic_volume(distance):
    radius = 7.0
    tumour = ball((24.0, 20.0, 24.0), radius)
    (shell,) = shell_masks(tumour, SPACING, [distance])
    # reference: distance from every voxel centre to the nearest tumour voxel centre
    points = np.argwhere(np.ones(SHAPE)) * np.asarray(SPACING)
    nearest, _ = cKDTree(np.argwhere(tumour) * np.asarray(SPACING)).query(points)
    nearest = nearest.reshape(SHAPE)
    expected = (nearest > 0) & (nearest <= distance + 1e-9)
    np.testing.assert_array_equal(shell.astype(bool), expected)
    assert not (shell & tumour).any()
    # analytic bounds, r = a voxel centre's distance to the ball's centre and h = half a voxel
    # diagonal: every shell voxel has R < r <= R + d, every voxel with R < r <= R + d - 2h
    # is in the shell
    r = np.sqrt(((points - np.array([24.0, 20.0, 24.0])) ** 2).sum(axis=1)).reshape(SHAPE)
    h = np.linalg.norm(SPACING) / 2
    assert (r[shell > 0] > radius).all() and (r[shell > 0] <= radius + distance + 1e-9).all()
    assert shell[(r > radius) & (r <= radius + distance - 2 * h)].all()
    dilated = (shell | tumour).sum() * np.prod(SPACING)
    assert dilated == pytest.approx(4 / 3 * np.pi * (radius + distance) ** 3, rel=0.15)


def test_shells_are_clipped_to_the_image_and_nested():
    tumour = ball((2.0, 20.0, 24.0), 5.0)  # touches the first slice
    three, six = shell_masks(tumour, SPACING, [3.0, 6.0])
    assert three.shape == six.shape == SHAPE
    assert not (three & ~six.astype(bool)).any() and six.sum() > three.sum()
    assert not shell_masks(np.zeros(SHAPE), SPACING, [3.0])[0].any()


def test_extractor_regions_equal_pyradiomics_direct():
    rng = np.random.default_rng(1)
    tumour, nodes = two_node_patient()
    empty = np.zeros_like(nodes)
    pet = rng.uniform(0.5, 1.5, (2, *SHAPE)) + 4.0 * tumour + 2.0 * np.stack([nodes, empty])
    X = volumes(pet=pet, mask=np.stack([tumour, tumour]), nodes=np.stack([nodes, empty]))
    ext = RadiomicsExtractor(
        regions=("tumour", "nodes"), shells=(3.0,), bin_width=0.5, spacing=SPACING, **FIRSTORDER
    )
    got = ext.fit_transform(X)
    assert ext.regions_ == ("tumour", "nodes", "shell3mm")
    (shell,) = shell_masks(tumour, SPACING, [3.0])
    for region, mask, prefix in (
        ("tumour", tumour, ""),
        ("nodes", nodes, "nodes_"),
        ("shell", shell, "shell3mm_"),
    ):
        ref = direct(pet[0], mask, SPACING, ["firstorder", "shape"])
        for name, value in ref.items():
            if name.startswith("original_shape_"):
                column = prefix + "shape_" + name.removeprefix("original_shape_")
                if region == "shell":  # shells have no shape features
                    assert column not in got
                    continue
            else:
                column = f"{prefix}pet_{name}"
            assert got.loc[0, column] == pytest.approx(value, rel=1e-9, abs=1e-12), column
    # the patient without nodes: every node feature is 0, the indicator tells it apart
    node_columns = [c for c in got if c.startswith("nodes_")]
    assert (got.loc[1, node_columns] == 0).all()
    assert got.loc[0, "nodes_burden_Present"] == 1 and got.loc[0, "nodes_burden_Count"] == 2
    assert not got.isna().any().any()
    # the tumour's columns keep the names of a tumour-only extractor, with equal values
    alone = RadiomicsExtractor(bin_width=0.5, spacing=SPACING, **FIRSTORDER).fit_transform(X)
    np.testing.assert_array_equal(got[list(alone.columns)].to_numpy(), alone.to_numpy())


def test_nodes_alone_need_no_tumour_mask_and_callables_work():
    _, nodes = two_node_patient()
    pet = np.ones((1, *SHAPE)) + nodes
    X = volumes(pet=pet)
    ext = RadiomicsExtractor(
        regions=("nodes",), nodes=lambda X: np.stack([nodes]), spacing=SPACING, **FIRSTORDER
    )
    got = clone(ext).fit_transform(X)
    assert all(c.startswith("nodes_") for c in got)
    assert got.loc[0, "nodes_burden_Count"] == 2


def test_tiny_node_region_gives_nan_texture_and_a_warning():
    tumour, _ = two_node_patient()
    one = np.zeros_like(tumour)
    one[3, 3, 3] = 1  # pyradiomics refuses a single voxel
    X = volumes(pet=np.random.default_rng(0).random((1, *SHAPE)), mask=[tumour], nodes=[one])
    ext = RadiomicsExtractor(regions=("tumour", "nodes"), spacing=SPACING, **FIRSTORDER)
    with pytest.warns(UserWarning, match="region 'nodes'.*patient 0"):
        got = ext.fit_transform(X)
    assert np.isnan(got.loc[0, "nodes_pet_original_firstorder_Mean"])
    assert got.loc[0, "nodes_burden_Count"] == 1
    assert got.loc[0, "nodes_burden_Volume"] == pytest.approx(np.prod(SPACING))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"regions": ("tumour", "shell")}, "regions must be among"),
        ({"regions": ("tumour", "tumour")}, "twice"),
        ({"regions": (), "shells": ()}, "nothing to describe"),
        ({"shells": (0.5,)}, "thinner than the smallest voxel"),
        ({"shells": (-3,)}, "positive distances"),
        ({"shells": (3, 3)}, "twice"),
    ],
)
def test_bad_region_parameters(params, match):
    tumour, nodes = two_node_patient()
    X = volumes(pet=np.ones((1, *SHAPE)), mask=[tumour], nodes=[nodes])
    with pytest.raises(ValueError, match=match):
        RadiomicsExtractor(spacing=SPACING, **FIRSTORDER, **params).fit(X)


def test_missing_or_bad_node_field():
    tumour, nodes = two_node_patient()
    X = volumes(pet=np.ones((1, *SHAPE)), mask=[tumour])
    ext = RadiomicsExtractor(regions=("tumour", "nodes"), spacing=SPACING, **FIRSTORDER)
    with pytest.raises(ValueError, match="no 'nodes' field"):
        ext.fit(X)
    X = volumes(pet=np.ones((1, *SHAPE)), mask=[tumour], nodes=[nodes])
    with pytest.raises(TypeError, match="lymph-node masks field .pet."):
        ext.set_params(nodes="pet").fit(X)
    ext.set_params(nodes="nodes").fit(X)
    bad = X.copy()
    bad["nodes"][0][0, 0, 0] = 2
    with pytest.raises(ValueError, match="not binary for patient 0"):
        ext.transform(bad)
