"""Clinical covariates of the synthetic cohort and their TNM stage.

Proportions follow the HECKTOR 2022 oropharyngeal training cohort as the AdaMSS paper reports
it (median age 60, 83 % male, HPV-positive in most patients with a known status).
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw_clinical", "tnm_stage"]


def draw_clinical(rng: np.random.Generator, n: int):
    """Age (whole years, float64), sex (1 = male) and HPV status (1 = positive), int64."""
    age = np.round(np.clip(rng.normal(60.0, 9.0, n), 30.0, 90.0))
    sex = (rng.uniform(size=n) < 0.83).astype(np.int64)
    hpv = (rng.uniform(size=n) < 0.65).astype(np.int64)
    return age, sex, hpv


def tnm_stage(tumour_diameter_mm, n_nodes, largest_node_mm):
    """Simplified AJCC 7th-edition oropharynx staging.

    T1 <= 20 mm < T2 <= 40 mm < T3 <= 55 mm < T4 (tumour diameter, standing in for extension);
    N0 no node, N1 a single node <= 30 mm, N2 several nodes or one of 30-60 mm, N3 > 60 mm.
    Stage I = T1N0, II = T2N0, III = T3N0 or N1, IV = T4 or N2-3.

    Returns
    -------
    t, n, stage : ndarray of int64
    """
    t = np.digitize(tumour_diameter_mm, [20.0, 40.0, 55.0]) + 1
    n = np.select(
        [n_nodes == 0, largest_node_mm > 60.0, (n_nodes > 1) | (largest_node_mm > 30.0)],
        [0, 3, 2],
        1,
    )
    stage = np.select([(t == 4) | (n >= 2), (t == 3) | (n == 1), t == 2], [4, 3, 2], 1)
    return t.astype(np.int64), n.astype(np.int64), stage.astype(np.int64)
