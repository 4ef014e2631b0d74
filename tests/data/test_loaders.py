"""survseg.data.loaders is the deprecated home of the loaders: its names still resolve, to the
functions of survseg.datasets, with a DeprecationWarning naming the new path."""

import pytest

import survseg.data.loaders as old
import survseg.datasets as new


@pytest.mark.parametrize("name", ["load_manifest", "load_hecktor"])
def test_old_import_path_warns_and_gives_the_moved_function(name):
    with pytest.warns(DeprecationWarning, match=rf"survseg\.datasets\.{name}"):
        moved = getattr(old, name)
    assert moved is getattr(new, name)
    assert name in dir(old)


def test_from_import_warns_too():
    with pytest.warns(DeprecationWarning, match="moved to survseg.datasets.load_hecktor"):
        from survseg.data.loaders import load_hecktor
    assert load_hecktor is new.load_hecktor


def test_other_names_are_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'load_nothing'"):
        old.load_nothing  # noqa: B018
