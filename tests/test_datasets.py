"""The bundled data sets load as documented."""

import pandas as pd
import pytest

from emwidgets import datasets


@pytest.mark.parametrize("name, rows, columns", [
    ("faithful", 272, ["eruptions", "waiting"]),
    ("geyser", 299, ["waiting", "duration"]),
    ("iris", 150, ["Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width", "Species"]),
    ("airquality", 153, ["Ozone", "Solar.R", "Wind", "Temp", "Month", "Day"]),
])
def test_shapes_and_columns(name, rows, columns):
    df = getattr(datasets, f"load_{name}")()
    assert isinstance(df, pd.DataFrame) and df.shape == (rows, len(columns))
    assert list(df.columns) == columns


def test_missing_values_are_nan():
    air = datasets.load_airquality()
    assert air["Ozone"].isna().sum() == 37 and air["Solar.R"].isna().sum() == 7
    penguins = datasets.load_penguins()
    assert len(penguins) == 344 and penguins["bill_length_mm"].isna().sum() == 2
    assert set(penguins["species"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_the_digits_are_the_uci_copy_scikit_learn_ships():
    from sklearn.datasets import load_digits

    digits = datasets.load_digits()
    reference = load_digits()
    assert digits.shape == (1797, 65) and list(digits.columns[:2]) == ["pixel_0", "pixel_1"]
    assert (digits.iloc[:, :64].to_numpy() == reference.data).all()
    assert (digits["digit"].to_numpy() == reference.target).all()
