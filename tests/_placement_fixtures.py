"""Seeded synthetic placement instances (points in a square, disc-shaped site reach)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from zhongdu.coverage._placement import PlacementProblem


def random_problem(
    seed: int,
    *,
    n_cells: int = 400,
    n_sites: int = 30,
    n_existing: int = 5,
    radius: float = 0.12,
    n_districts: int = 4,
    costs: bool = False,
    integer_population: bool = False,
) -> PlacementProblem:
    """Cells scattered over the unit square with lognormal population; sites cover a disc around them."""
    rng = np.random.default_rng(seed)
    xy = rng.random((n_cells, 2))
    pop = rng.lognormal(3.0, 1.0, n_cells)
    if integer_population:
        pop = np.rint(pop)
    pop[rng.random(n_cells) < 0.1] = 0.0  # some empty cells, as on the real grid
    centres = rng.random((n_sites + n_existing, 2))
    radii = radius * rng.uniform(0.6, 1.4, n_sites + n_existing)
    dist = np.linalg.norm(centres[:, None, :] - xy[None, :, :], axis=2)
    reach = dist <= radii[:, None]
    covered = reach[n_sites:].any(axis=0)
    sites = sparse.csr_array(reach[:n_sites])
    district = np.minimum((xy[:, 0] * n_districts).astype(np.int32), n_districts - 1)
    cost = np.rint(rng.uniform(1, 5, n_sites)) if costs else np.ones(n_sites)
    return PlacementProblem(
        site_ids=tuple(f"S{i:03d}" for i in range(n_sites)),
        sites=sites,
        population=pop,
        covered=covered,
        district_index=district.astype(np.int32),
        districts=tuple(f"D{i}" for i in range(n_districts)),
        cost=cost,
        kind=("public_land",) * n_sites,
    )
