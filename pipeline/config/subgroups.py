"""`--subgroup-bands NAME=e0,e1,...`: the band edges of a numeric subgroup attribute."""

from __future__ import annotations

import math

from pipeline.errors import ConfigError

USAGE = (
    "Pass --subgroup-bands NAME=EDGES with increasing numbers, e.g. "
    "--subgroup-bands PatientAge=0,18,40,65,120 (job.toml: [data] subgroup_bands = "
    '["PatientAge=0,18,40,65,120"]).'
)


def parse_bands(
    specs: tuple[str, ...] | list[str], subgroups: tuple[str, ...] = ()
) -> dict[str, tuple[float, ...]]:
    """Band edges by attribute name; a value v falls in [e_i, e_i+1) (the last band is closed).

    Raises:
        ConfigError: no `=`, fewer than two edges, a non-number, edges not increasing, a
            name given twice, or bands for an attribute that is not a --subgroup.
    """
    bands: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        name, sep, text = (part.strip() for part in spec.partition("="))
        if not sep or not name:
            raise ConfigError(f"--subgroup-bands received '{spec}'. {USAGE}")
        try:
            edges = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise ConfigError(
                f"--subgroup-bands {spec}: the edges must be numbers. {USAGE}"
            ) from None
        increasing = all(b > a for a, b in zip(edges, edges[1:], strict=False))
        if len(edges) < 2 or not increasing or not all(math.isfinite(e) for e in edges):
            raise ConfigError(
                f"--subgroup-bands {spec}: expected at least two finite, increasing edges; "
                f"received {list(edges)}. {USAGE}"
            )
        if name in bands:
            raise ConfigError(f"--subgroup-bands names '{name}' twice; pass its edges once.")
        if subgroups and name not in subgroups:
            raise ConfigError(
                f"--subgroup-bands {spec} bands '{name}', which is not a --subgroup "
                f"(received subgroups {list(subgroups)}). Add --subgroup {name}."
            )
        bands[name] = edges
    if bands and not subgroups:
        raise ConfigError(
            f"--subgroup-bands bands {sorted(bands)} but no --subgroup is given. Add "
            f"--subgroup {next(iter(bands))}."
        )
    return bands
