"""Constants, configs, granule/scene names and the package's import weight."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path

import numpy as np
import pytest

from seaice_tasks.config import DiscoverConfig, JsonConfig, ReaderConfig, StorageConfig, config_hash
from seaice_tasks.constants import (
    BEAMS,
    CLASS_COLOURS_RGB,
    CLASS_NAMES,
    GPS_EPOCH,
    SeaIceClass,
    SignalConf,
    SurfaceType,
    gps_leap_seconds,
    is_strong,
    strong_beams,
    weak_beams,
)
from seaice_tasks.errors import ConfigError, GranuleNameError
from seaice_tasks.granule import parse_granule, parse_s2_scene
from seaice_tasks.io._time import delta_time_to_utc


def test_beams_and_orientation() -> None:
    assert BEAMS == ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
    assert strong_beams(0) == ("gt1l", "gt2l", "gt3l") and weak_beams(0) == ("gt1r", "gt2r", "gt3r")
    assert strong_beams(1) == ("gt1r", "gt2r", "gt3r") and weak_beams(1) == ("gt1l", "gt2l", "gt3l")
    assert strong_beams(2) == () and weak_beams(2) == ()
    assert is_strong("gt2r", 1) is True and is_strong("gt2r", 0) is False and is_strong("gt2r", 2) is None
    with pytest.raises(ValueError):
        strong_beams(3)


def test_codes() -> None:
    assert [int(c) for c in SignalConf] == [-2, -1, 0, 1, 2, 3, 4]
    assert SurfaceType.SEA_ICE == 2 and SurfaceType.INLAND_WATER == 4
    assert [int(c) for c in SeaIceClass] == [0, 1, 2, 255]
    assert set(CLASS_NAMES) == set(SeaIceClass) == set(CLASS_COLOURS_RGB)
    assert CLASS_COLOURS_RGB[SeaIceClass.THICK_ICE] == (255, 0, 0)
    assert CLASS_COLOURS_RGB[SeaIceClass.OPEN_WATER] == (0, 255, 0)


def test_gps_time_to_utc() -> None:
    assert gps_leap_seconds(1198800018.0) == 18  # 2018-01-01
    assert gps_leap_seconds(0.0) == 0
    # 2019-11-04T19:53:11Z in ATLAS delta_time: seconds from 2018-01-01 on the GPS base.
    t_utc = dt.datetime(2019, 11, 4, 19, 53, 11, tzinfo=dt.UTC)
    delta = (t_utc - dt.datetime(2018, 1, 1, tzinfo=dt.UTC)).total_seconds()
    got = delta_time_to_utc(np.array([delta, np.nan]))
    assert str(got[0]) == "2019-11-04T19:53:11.000000000" and np.isnat(got[1])
    assert delta_time_to_utc(np.array([])).shape == (0,) and np.isnat(delta_time_to_utc([np.nan])).all()


def test_utc_across_a_leap_second() -> None:
    """An array spanning 2017-01-01 (GPS - UTC 17 -> 18 s) takes each instant's own offset."""
    # delta_time of GPS 2017-01-01T00:00:18 (the leap instant) relative to the ATLAS SDP epoch
    leap_gps = (dt.datetime(2017, 1, 1, tzinfo=dt.UTC) - GPS_EPOCH).total_seconds() + 18
    delta = np.array([-2.5, -0.5, 0.0, 0.5, np.nan, 2.5]) + leap_gps - 1198800018.0
    got = delta_time_to_utc(delta)
    expected = [None if not np.isfinite(d) else
                np.datetime64(GPS_EPOCH.replace(tzinfo=None), "ns")
                + np.timedelta64(round((d + 1198800018.0 - gps_leap_seconds(d + 1198800018.0)) * 1e9), "ns")
                for d in delta]
    assert [str(g) for g in got[[0, 1, 2, 3, 5]]] == [str(e) for i, e in enumerate(expected) if i != 4]
    assert np.isnat(got[4])
    # GPS - 2.5 s before the leap instant is still on the old offset (17 s); from it on, 18 s
    assert str(got[0]) == "2016-12-31T23:59:58.500000000" and str(got[2]) == "2017-01-01T00:00:00.000000000"
    assert str(got[5]) == "2017-01-01T00:00:02.500000000"


@dataclass(frozen=True)
class _Nested(JsonConfig):
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    beams: tuple[str, ...] = ("gt1r",)
    threshold: float = 3.0
    name: str | None = None


def test_config_json_roundtrip_and_validation() -> None:
    for cfg in (ReaderConfig(), StorageConfig(root="s3://b/p"), DiscoverConfig(products=("ATL03",)),
                _Nested(reader=ReaderConfig(default_sc_orient=0), beams=("gt1l", "gt2l"), name="x")):
        text = cfg.to_json()
        assert type(cfg).from_json(text) == cfg
        assert json.loads(text) == cfg.to_dict()
    assert config_hash(ReaderConfig()) == config_hash(ReaderConfig())
    assert config_hash(ReaderConfig()) != config_hash(ReaderConfig(default_sc_orient=0))
    assert _Nested.from_dict({"threshold": 4}).threshold == 4.0
    with pytest.raises(ConfigError, match="unknown field"):
        ReaderConfig.from_dict({"default_sc_orien": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        ReaderConfig.from_dict({"default_sc_orient": "1"})
    with pytest.raises(ConfigError, match="invalid JSON"):
        ReaderConfig.from_json("{")
    with pytest.raises(ConfigError, match="expected a list"):
        DiscoverConfig.from_dict({"products": "ATL03"})
    with pytest.raises(FrozenInstanceError):
        ReaderConfig().default_sc_orient = 0  # type: ignore[misc]


def test_parse_granule_names() -> None:
    g = parse_granule("/data/ATL03_20191104195311_05940510_006_01.h5")
    assert (g.product, g.rgt, g.cycle, g.region, g.release, g.revision) == ("ATL03", 594, 5, 10, 6, 1)
    assert g.start == dt.datetime(2019, 11, 4, 19, 53, 11, tzinfo=dt.UTC)
    assert g.granule == "20191104195311_05940510" and g.date == dt.date(2019, 11, 4)
    h = parse_granule("icepyx_processed_ATL07-01_20190222003738_08490201_003_02.h5")
    assert (h.product, h.hemisphere, h.rgt, h.cycle, h.region, h.release) == ("ATL07", 1, 849, 2, 1, 3)
    for bad in ("harmony_ATL03_gt1l.h5", "ATL03_2019110419531_05940510_006_01.h5",
                "ATL03_20191304195311_05940510_006_01.h5"):
        with pytest.raises(GranuleNameError, match=bad.split("/")[-1][:10]):
            parse_granule(bad)


def test_parse_real_pairing_lists(realdata: Path) -> None:
    """Every row of the real IS2/S2 pairing lists parses; the names agree with their columns."""
    rows = 0
    for path in sorted((realdata / "pairs").glob("*.csv")):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                g = parse_granule(row["IS2_file"])
                s = parse_s2_scene(row["S1_id"])
                assert g.product == "ATL10" and g.hemisphere == 2 and g.release == 5
                assert g.rgt == int(row["track"]) and g.cycle == int(row["cycle"])
                assert s.utm_epsg // 100 == 327  # southern hemisphere UTM
                assert abs((s.sensing.date() - g.date).days) <= 1
                rows += 1
    assert rows > 300


def test_parse_s2_names() -> None:
    s = parse_s2_scene("S2A_MSIL1C_20191104T194521_N0208_R085_T02CNA_20191104T205923.SAFE")
    assert (s.tile, s.mission, s.level, s.baseline, s.utm_epsg) == ("02CNA", "S2A", "L1C", (2, 8), 32702)
    assert s.scene == "20191104T194521_T02CNA"
    assert parse_s2_scene("20191104T194521_T02CNA").scene == s.scene
    assert parse_s2_scene("x/20160112T160000_T18SVG").utm_epsg == 32618
    with pytest.raises(GranuleNameError):
        parse_s2_scene("s2_B02_crop1024.tif")


def test_import_seaice_tasks_stays_light() -> None:
    """`import seaice_tasks` (and the CLI module) pull in no airflow, pyspark or torch."""
    code = (
        "import sys, seaice_tasks, seaice_tasks.cli, seaice_tasks.constants, seaice_tasks.granule;"
        "heavy = [m for m in ('airflow', 'pyspark', 'torch') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
