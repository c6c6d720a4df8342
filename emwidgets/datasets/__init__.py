"""Small real data sets shipped with emwidgets, each returned as a pandas DataFrame.

See ``README.md`` in this folder for sources and licences.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_airquality", "load_carcinoma", "load_deaths", "load_digits", "load_faithful",
           "load_geyser", "load_iris", "load_penguins"]


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


def load_carcinoma() -> pd.DataFrame:
    """118 slides of the uterine cervix, each rated by 7 pathologists (``A``-``G``)
    on a 5-point scale (1 negative ... 5 invasive carcinoma): latent class analysis.

    Source: Landis & Koch (1977), Biometrics 33:363-374, Table 1 (data of
    Holmquist, McMahan & Williams 1967).
    """
    return _read("carcinoma.csv").drop(columns="slide")


def load_deaths() -> pd.DataFrame:
    """Deaths per day of London women aged 80 and over, 1910-1912: ``deaths_per_day``
    (0-9) and ``n_days`` with that count (1,096 days): a two-component Poisson mixture.

    Source: Hasselblad (1969), JASA 64:1459-1471, from The Times.
    """
    return _read("deaths.csv")


def load_digits() -> pd.DataFrame:
    """1,797 handwritten digits, 8 x 8 pixels of 0-16 ink: ``pixel_0`` ... ``pixel_63``
    (row by row) and the written ``digit`` (0-9).

    64 columns for a mixture's covariances: a mixture of factor analysers'
    (``GaussianMixture(covariance_type="factor")``). Source: the UCI "Optical
    Recognition of Handwritten Digits" test set (Alpaydin & Kaynak 1998, CC BY 4.0), as
    scikit-learn ships it.
    """
    import gzip

    with resources.files(__name__).joinpath("digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as f:
            frame = pd.read_csv(f, header=None)
    frame.columns = [f"pixel_{i}" for i in range(64)] + ["digit"]
    return frame.astype("int64")

