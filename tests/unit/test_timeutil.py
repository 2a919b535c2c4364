"""Timestamp normalisation: what cannot be a time is a ValueError, as documented."""

import pytest

from synchronizer import timeutil


@pytest.mark.parametrize("value", [1e300, -1e300, 1e18, float("inf"), 10**400])
def test_an_epoch_out_of_range_is_a_value_error(value):
    """An epoch the platform cannot represent raises ValueError, which callers take as bad input."""
    with pytest.raises(ValueError, match="out of range"):
        timeutil.normalize(value)
