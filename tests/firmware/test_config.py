"""twstation.config: Config() validates through twstation.settings.fill; a changed copy comes from
config.updated (twstation.settings, reached through config's module __getattr__)."""

from __future__ import annotations

import pytest

from twstation import config
from twstation.errors import ConfigError

GOOD = {"device_id": 1, "site": "A", "step": 1}


def test_updated_merges_revalidates_and_leaves_the_old_config_alone():
    a = config.Config(GOOD)
    b = config.updated(a, {"bind_ms": 7000, "division_g": 20})
    assert isinstance(b, config.Config)
    assert b.bind_ms == 7000 and a.bind_ms == 5000
    assert b.values == dict(a.values, bind_ms=7000, division_g=20)
    assert b.division_code == config.DIVISIONS.index(20) != a.division_code
    back = config.updated(b, {"bind_ms": 5000, "division_g": 10})
    assert b.hash != a.hash and back.hash == a.hash
    with pytest.raises(ConfigError, match="bind_ms"):
        config.updated(a, {"bind_ms": 5})
    with pytest.raises(ConfigError, match="unknown field 'colour'"):
        config.updated(a, {"colour": "red"})
    assert a.values == config.Config(GOOD).values  # unchanged by the refused updates
