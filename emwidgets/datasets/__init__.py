"""Small real data sets shipped with emwidgets, each returned as a pandas DataFrame.

See ``README.md`` in this folder for sources and licences.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_airquality", "load_faithful", "load_geyser", "load_iris", "load_penguins"]


def _read(name: str, **kwargs) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("r") as f:
        return pd.read_csv(f, na_values=["NA"], **kwargs)


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser, 272 eruptions: ``eruptions`` and ``waiting`` (minutes).

    The classic two-cluster EM example. Source: R ``datasets::faithful``
    (Härdle 1991, from Azzalini & Bowman 1990).
    """
    return _read("faithful.csv", index_col=0).reset_index(drop=True)


def load_geyser() -> pd.DataFrame:
    """Old Faithful, 299 consecutive eruptions in order: ``waiting``, ``duration``.

    A real sequence for hidden Markov models. Source: R ``MASS::geyser``
    (Azzalini & Bowman 1990).
    """
    return _read("geyser.csv", index_col=0).reset_index(drop=True)


def load_iris() -> pd.DataFrame:
    """Fisher's iris, 150 flowers: four measurements (cm) and ``Species``.

    Source: R ``datasets::iris`` (Anderson 1935, Fisher 1936).
    """
    return _read("iris.csv", index_col=0).reset_index(drop=True)


def load_penguins() -> pd.DataFrame:
    """Palmer penguins, 344 birds: bill length/depth, flipper length, body mass, ``species``.

    A few values are missing (NaN). Source: the ``palmerpenguins`` package
    (Gorman, Williams & Fraser 2014), CC0.
    """
    return _read("penguins.csv")


def load_airquality() -> pd.DataFrame:
    """New York air quality, May-September 1973, 153 days.

    ``Ozone`` (37 missing) and ``Solar.R`` (7 missing), ``Wind``, ``Temp``,
    ``Month``, ``Day``. Source: R ``datasets::airquality``.
    """
    return _read("airquality.csv", index_col=0).reset_index(drop=True)
